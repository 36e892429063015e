//! The inference capability backed by the tract model registry and worker pool of the
//! inference provider core.

use edgecell_inference::InferencePool;

use crate::bindings::capabilities::edgecell::inference::runner as wit;
use crate::services::InferenceBackend;

edgecell_inference::wit_conversions!(wit);

impl InferenceBackend for InferencePool {
    fn list_models(&self) -> Vec<wit::ModelInfo> {
        InferencePool::list_models(self).into_iter().map(model_info).collect()
    }

    fn model_metadata(&self, name: &str) -> Result<wit::ModelInfo, wit::InferenceError> {
        InferencePool::model_metadata(self, name).map(model_info).map_err(inference_error)
    }

    fn run(&self, model: &str, inputs: Vec<wit::Tensor>) -> Result<Vec<wit::Tensor>, wit::InferenceError> {
        InferencePool::run(self, model, inputs.into_iter().map(tensor_to_core).collect())
            .map(|out| out.into_iter().map(tensor_to_wit).collect())
            .map_err(inference_error)
    }
}
