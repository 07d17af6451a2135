// Types for smile-factor's package entry (smile-factor.js).

/** Why the factor failed; `null` when it passed. */
export type SmileFactorReason =
  | 'smiled'
  | 'no_face'
  | 'interrupted'
  | 'camera_denied'
  | 'camera_unavailable'
  | 'camera_lost'
  /** Smile mode (`"mode": "smile"` in the page config): no smile was held. */
  | 'no_smile'
  | 'error';

/** The outcome: the `detail` of `smile-factor-result` and what `mount()` resolves to. */
export interface SmileFactorResult {
  /** True only when the user kept a straight face and was visible enough. */
  notsmiling: boolean;
  reason: SmileFactorReason | null;
  /** Camera frames the model judged. */
  framesAnalysed: number;
  /** Share (0..1) of judged frames that showed a face. */
  faceSeenRatio: number;
  /** Highest smile probability seen (0..1). */
  maxSmileScore: number;
  /** Only when the options or the engine were unusable (reason `error`). */
  message?: string;
}

/** Options of `mount()`; the element's attributes carry the same (kebab-case). */
export interface SmileFactorOptions {
  /** Login state sent back with the redirect; required with `returnUrl`. */
  state?: string;
  /**
   * Redirect to `<returnUrl>/continue?state=..&notsmiling=..` after the verdict. Must be
   * listed in the page config (`config`); without it there is no redirect, only the result.
   */
  returnUrl?: string;
  /** Countdown in seconds, 5..120 (default 15). */
  duration?: number | string;
  /** Smile score (the smile head's, not face-api's `happy`) that counts as a smile, 0..1 exclusive (default 0.49). */
  threshold?: number | string;
  /**
   * Frames analysed per second while no smile is near, 5..60 (default 10; 60: every frame
   * the worker can take). A score at half the threshold analyses every frame for 500 ms.
   */
  analysisFps?: number | string;
  /** `'jokes'` (default) or the URL of a video to play during the countdown. */
  content?: string;
  /** Language of the texts: `en` (default) or `de`. */
  lang?: string;
  /** URL of the page config with the return-URL allowlist (default `config.json`). */
  config?: string;
  /** Aborting removes the challenge (camera and worker stop) and rejects the promise. */
  signal?: AbortSignal;
}

/**
 * Adds a `<smile-factor>` to `element` and resolves with its result once the challenge
 * ends. Unusable options resolve with reason `error` and a `message`; it rejects only
 * when `element` is not an Element or `signal` aborts.
 */
export function mount(element: Element, options?: SmileFactorOptions): Promise<SmileFactorResult>;

/** The whole hosted page (www/index.html) rendered into `root`. */
export function startPage(root: HTMLElement): Promise<void>;

/**
 * `<smile-factor state return-url duration threshold analysis-fps content lang config>`.
 * Dispatches `smile-factor-result` (bubbles, composed) with a {@link SmileFactorResult}.
 * Themeable with `--smile-factor-accent`, `--smile-factor-accent-fg`, `--smile-factor-bg`,
 * `--smile-factor-fg`, `--smile-factor-muted`, `--smile-factor-focus`,
 * `--smile-factor-radius` and `--smile-factor-font`.
 */
export class SmileFactorElement extends HTMLElement {
  /** Options set from code; attributes win over them. Read when connected. */
  options: Omit<SmileFactorOptions, 'signal'>;
  /** The result once the challenge has ended, else null. */
  readonly result: SmileFactorResult | null;
}

declare global {
  interface HTMLElementTagNameMap {
    'smile-factor': SmileFactorElement;
  }
  interface HTMLElementEventMap {
    'smile-factor-result': CustomEvent<SmileFactorResult>;
  }
}
