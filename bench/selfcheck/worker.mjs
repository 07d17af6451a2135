// A module worker that imports a module and fetches a binary file, as an inference worker would.
import { name } from './dep.mjs';

const response = await fetch('blob.bin');
const bytes = (await response.arrayBuffer()).byteLength;
postMessage({ name, bytes });
