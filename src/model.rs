//! Loading the two ONNX models with tract: once, from bytes, with the input shape
//! pinned so tract can optimise for it, then reused for every frame.

use std::io::Cursor;
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::{Result, SmileError};

/// A model optimised for one input shape, ready to run many times.
pub struct Model {
    name: &'static str,
    plan: Arc<TypedSimplePlan>,
    input_shape: Vec<usize>,
}

impl Model {
    /// Parses `bytes` as ONNX, pins input 0 to `input_shape` (f32), optimises once,
    /// and checks that output 0 has `output_shape`, which catches a swapped or foreign file.
    pub fn load(
        name: &'static str,
        bytes: &[u8],
        input_shape: &[usize],
        output_shape: &[usize],
    ) -> Result<Self> {
        let load_err = |e: TractError| SmileError::ModelLoad {
            model: name,
            reason: format!("{e:#}"),
        };
        if bytes.is_empty() {
            return Err(SmileError::ModelLoad {
                model: name,
                reason: "the file is empty".into(),
            });
        }
        let inference = tract_onnx::onnx()
            // Parse the protobuf from memory: the browser hands us fetched bytes.
            .model_for_read(&mut Cursor::new(bytes))
            .map_err(load_err)?;
        let declared = inference.input_outlets().map_err(load_err)?.len();
        if declared != 1 {
            return Err(SmileError::ModelShape {
                model: name,
                expected: "1 input".into(),
                found: format!("{declared} inputs"),
            });
        }
        let typed = inference
            // Pin the shape so every dimension is concrete and tract can pick kernels.
            .with_input_fact(0, f32::fact(input_shape).into())
            .and_then(|m| m.into_optimized())
            .map_err(|e| SmileError::ModelShape {
                model: name,
                expected: format!("an input accepting f32 {input_shape:?}"),
                found: format!("{e:#}"),
            })?;
        let found = typed
            .output_fact(0)
            .map(|f| format!("{:?}", f.shape))
            .map_err(load_err)?;
        let concrete = typed
            .output_fact(0)
            .ok()
            .and_then(|f| f.shape.as_concrete().map(<[usize]>::to_vec));
        if concrete.as_deref() != Some(output_shape) {
            return Err(SmileError::ModelShape {
                model: name,
                expected: format!("output {output_shape:?}"),
                found: format!("output {found}"),
            });
        }
        // Freeze the optimised graph into a plan that runs without re-analysis.
        let plan = typed.into_runnable().map_err(load_err)?;
        Ok(Self {
            name,
            plan,
            input_shape: input_shape.to_vec(),
        })
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Runs the plan on one input tensor and returns output 0 as an owned f32 vector.
    pub fn run(&self, input: Tensor) -> Result<Vec<f32>> {
        let err = |e: TractError| SmileError::Inference {
            model: self.name,
            reason: format!("{e:#}"),
        };
        let outputs = self.plan.run(tvec!(input.into())).map_err(err)?;
        let first = outputs.first().ok_or_else(|| SmileError::Inference {
            model: self.name,
            reason: "no output".into(),
        })?;
        let view = first.to_plain_array_view::<f32>().map_err(err)?;
        Ok(view.iter().copied().collect())
    }
}
