//! Just enough of ONNX's protobuf to read a model: the graph's nodes, initializers,
//! input and output names. Hand-written wire-format reading (no codegen, no prost) keeps
//! the engine small; unknown fields are skipped, as protobuf requires.

/// A tensor from an initializer or an attribute. Every element type we accept fits in
/// f64 exactly (uint8 codes, float32, float64, and the small int64 shape/slice values;
/// int64 beyond 2^53 only appears as "to the end" in Slice, where rounding is harmless).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorProto {
    pub name: String,
    pub dims: Vec<usize>,
    pub values: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Floats(Vec<f32>),
    Bytes(Vec<u8>),
    Tensor(TensorProto),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeProto {
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<(String, Attr)>,
}

impl NodeProto {
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphProto {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

// ONNX TensorProto.DataType values we read.
const FLOAT: i64 = 1;
const UINT8: i64 = 2;
const INT64: i64 = 7;
const DOUBLE: i64 = 11;

/// Parses a serialised ModelProto and returns its graph.
pub fn parse_model(bytes: &[u8]) -> Result<GraphProto, String> {
    let mut graph = None;
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        if field == 7 {
            graph = Some(parse_graph(value.bytes()?)?);
        }
    }
    graph.ok_or_else(|| "not an ONNX model (no graph)".to_string())
}

fn parse_graph(bytes: &[u8]) -> Result<GraphProto, String> {
    let mut g = GraphProto::default();
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        match field {
            1 => g.nodes.push(parse_node(value.bytes()?)?),
            5 => g.initializers.push(parse_tensor(value.bytes()?)?),
            11 => g.inputs.push(value_info_name(value.bytes()?)?),
            12 => g.outputs.push(value_info_name(value.bytes()?)?),
            _ => {}
        }
    }
    Ok(g)
}

fn value_info_name(bytes: &[u8]) -> Result<String, String> {
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        if field == 1 {
            return value.string();
        }
    }
    Err("a graph input or output has no name".into())
}

fn parse_node(bytes: &[u8]) -> Result<NodeProto, String> {
    let mut n = NodeProto::default();
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        match field {
            1 => n.inputs.push(value.string()?),
            2 => n.outputs.push(value.string()?),
            4 => n.op_type = value.string()?,
            5 => n.attrs.push(parse_attr(value.bytes()?)?),
            7 => n.domain = value.string()?,
            _ => {}
        }
    }
    Ok(n)
}

fn parse_attr(bytes: &[u8]) -> Result<(String, Attr), String> {
    let (mut name, mut attr) = (String::new(), None);
    let (mut ints, mut floats) = (Vec::new(), Vec::new());
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        match field {
            1 => name = value.string()?,
            2 => attr = Some(Attr::Float(value.f32()?)),
            3 => attr = Some(Attr::Int(value.varint()? as i64)),
            4 => attr = Some(Attr::Bytes(value.bytes()?.to_vec())),
            5 => attr = Some(Attr::Tensor(parse_tensor(value.bytes()?)?)),
            7 => value.f32s(&mut floats)?,
            8 => value.varints(&mut ints)?,
            _ => {}
        }
    }
    let attr = match attr {
        Some(a) => a,
        None if !ints.is_empty() => Attr::Ints(ints.into_iter().map(|v| v as i64).collect()),
        None if !floats.is_empty() => Attr::Floats(floats),
        // An empty list: ints and floats look the same on the wire.
        None => Attr::Ints(Vec::new()),
    };
    Ok((name, attr))
}

fn parse_tensor(bytes: &[u8]) -> Result<TensorProto, String> {
    let mut name = String::new();
    let (mut dims, mut data_type, mut raw) = (Vec::new(), 0i64, None);
    let (mut floats, mut int64s, mut doubles) = (Vec::new(), Vec::new(), Vec::new());
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        match field {
            1 => value.varints(&mut dims)?,
            2 => data_type = value.varint()? as i64,
            4 => value.f32s(&mut floats)?,
            7 => value.varints(&mut int64s)?,
            8 => name = value.string()?,
            9 => raw = Some(value.bytes()?),
            10 => value.f64s(&mut doubles)?,
            _ => {}
        }
    }
    let dims = dims
        .iter()
        .map(|&d| usize::try_from(d as i64).map_err(|_| format!("tensor {name}: negative dim")))
        .collect::<Result<Vec<_>, _>>()?;
    let values: Vec<f64> = match (data_type, raw) {
        (FLOAT, Some(b)) => chunks::<4>(b, &format!("raw data of tensor {name}"))?
            .map(|c| f32::from_le_bytes(c) as f64)
            .collect(),
        (UINT8, Some(b)) => b.iter().map(|&v| v as f64).collect(),
        (INT64, Some(b)) => chunks::<8>(b, &format!("raw data of tensor {name}"))?
            .map(|c| i64::from_le_bytes(c) as f64)
            .collect(),
        (DOUBLE, Some(b)) => chunks::<8>(b, &format!("raw data of tensor {name}"))?
            .map(f64::from_le_bytes)
            .collect(),
        (FLOAT, None) => floats.iter().map(|&v| v as f64).collect(),
        (INT64, None) => int64s.iter().map(|&v| v as i64 as f64).collect(),
        (DOUBLE, None) => doubles,
        (t, _) => return Err(format!("tensor {name}: element type {t} is not supported")),
    };
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("tensor {name}: dims overflow"))?;
    if values.len() != expected {
        return Err(format!(
            "tensor {name}: {} values for dims {dims:?}",
            values.len()
        ));
    }
    Ok(TensorProto { name, dims, values })
}

fn chunks<'a, const N: usize>(
    b: &'a [u8],
    what: &str,
) -> Result<impl Iterator<Item = [u8; N]> + 'a, String> {
    if !b.len().is_multiple_of(N) {
        return Err(format!("{what}: not a whole number of elements"));
    }
    Ok(b.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    }))
}

/// One field's payload, by wire type.
enum Value<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

impl<'a> Value<'a> {
    fn bytes(&self) -> Result<&'a [u8], String> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err("expected a length-delimited field".into()),
        }
    }
    fn string(&self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "a name is not UTF-8".into())
    }
    fn varint(&self) -> Result<u64, String> {
        match self {
            Value::Varint(v) => Ok(*v),
            _ => Err("expected a varint field".into()),
        }
    }
    fn f32(&self) -> Result<f32, String> {
        match self {
            Value::Fixed32(b) => Ok(f32::from_le_bytes(*b)),
            _ => Err("expected a 32-bit field".into()),
        }
    }
    /// A repeated varint field, packed or not.
    fn varints(&self, out: &mut Vec<u64>) -> Result<(), String> {
        match self {
            Value::Varint(v) => out.push(*v),
            Value::Bytes(b) => {
                let mut r = Reader::new(b);
                while !r.done() {
                    out.push(r.varint()?);
                }
            }
            _ => return Err("expected varints".into()),
        }
        Ok(())
    }
    fn f32s(&self, out: &mut Vec<f32>) -> Result<(), String> {
        match self {
            Value::Fixed32(b) => out.push(f32::from_le_bytes(*b)),
            Value::Bytes(b) => out.extend(chunks::<4>(b, "packed floats")?.map(f32::from_le_bytes)),
            _ => return Err("expected floats".into()),
        }
        Ok(())
    }
    fn f64s(&self, out: &mut Vec<f64>) -> Result<(), String> {
        match self {
            Value::Fixed64(b) => out.push(f64::from_le_bytes(*b)),
            Value::Bytes(b) => {
                out.extend(chunks::<8>(b, "packed doubles")?.map(f64::from_le_bytes))
            }
            _ => return Err("expected doubles".into()),
        }
        Ok(())
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or("truncated protobuf (varint)")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("malformed protobuf varint".into())
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or("truncated protobuf (field runs past the end)")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, String> {
        if self.done() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(self.take(8)?.try_into().map_err(|_| "fixed64")?),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                Value::Bytes(self.take(n)?)
            }
            5 => Value::Fixed32(self.take(4)?.try_into().map_err(|_| "fixed32")?),
            w => return Err(format!("not a protobuf message (wire type {w})")),
        };
        Ok(Some((key >> 3, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_models() {
        for (file, nodes) in [
            ("models/tiny_face_detector.onnx", 138),
            // 235 converted from face-api, plus the smile head's Gemm and Sigmoid.
            ("models/face_expression.onnx", 237),
        ] {
            let bytes = std::fs::read(file).unwrap();
            let g = parse_model(&bytes).unwrap();
            assert_eq!(g.nodes.len(), nodes, "{file}");
            assert_eq!(g.inputs, ["input"]);
            assert!(g.initializers.iter().any(|t| t.name.ends_with("/q")));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"\xff\xff\xff"[..],
            b"\x3a\x10abc",
            b"hello world",
            &[0x0b; 64],
        ] {
            assert!(parse_model(bad).is_err(), "{bad:?}");
        }
        let bytes = std::fs::read("models/face_expression.onnx").unwrap();
        for cut in [1, 100, bytes.len() / 2, bytes.len() - 1] {
            assert!(parse_model(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
