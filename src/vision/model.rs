//! Loading the two ONNX models with our engine ([`crate::vision::nn`]): once, from bytes, for one
//! pinned input shape, then reused for every frame.

use crate::vision::error::{Result, SmileError};
use crate::vision::nn::{Net, NetError};

/// A model prepared for one input shape, ready to run many times.
pub struct Model {
    name: &'static str,
    net: Net,
}

impl Model {
    /// Parses `bytes` as ONNX for input 0 of `input_shape` (f32, NCHW) and checks that
    /// its outputs have `output_shapes`, which catches a swapped, foreign or outdated file
    /// (an expression model without the smile head).
    pub fn load(
        name: &'static str,
        bytes: &[u8],
        input_shape: &[usize],
        output_shapes: &[&[usize]],
    ) -> Result<Self> {
        if bytes.is_empty() {
            return Err(SmileError::ModelLoad {
                model: name,
                reason: "the file is empty".into(),
            });
        }
        let net = Net::load(bytes, input_shape).map_err(|e| match e {
            NetError::Shape(reason) => SmileError::ModelShape {
                model: name,
                expected: format!("a network for input {input_shape:?}"),
                found: reason,
            },
            NetError::Invalid(reason) => SmileError::ModelLoad {
                model: name,
                reason,
            },
        })?;
        if net.output_shapes() != output_shapes {
            return Err(SmileError::ModelShape {
                model: name,
                expected: format!("outputs {output_shapes:?}"),
                found: format!("outputs {:?}", net.output_shapes()),
            });
        }
        Ok(Self { name, net })
    }

    pub fn input_shape(&self) -> &[usize] {
        self.net.input_shape()
    }

    /// Runs the model on one NCHW input and returns output 0, flattened.
    pub fn run(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        self.net.run(input).map_err(|e| self.error(e))
    }

    /// Runs the model and returns every output, flattened, in order.
    pub fn run_all(&self, input: Vec<f32>) -> Result<Vec<Vec<f32>>> {
        self.net.run_all(input).map_err(|e| self.error(e))
    }

    fn error(&self, e: NetError) -> SmileError {
        SmileError::Inference {
            model: self.name,
            reason: e.to_string(),
        }
    }
}
