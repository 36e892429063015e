//! wRPC bindings and handlers of the inference provider over `edgecell-inference`.

use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use edgecell_inference::{InferencePool, ModelRegistry};
use tracing::Instrument as _;
use tracing::info;
use wasmcloud_provider_sdk::{Context, Provider, ProviderInitConfig};

use crate::config::ProviderConfig;

wit_bindgen_wrpc::generate!({
    world: "inference-provider",
    path: "../../../wit",
    generate_all,
});

use exports::edgecell::inference::runner as wit;

edgecell_inference::wit_conversions!(wit);

/// The provider: a model registry and a worker pool shared by every linked component.
#[derive(Clone, Default)]
pub struct InferenceProvider(Arc<OnceLock<Arc<InferencePool>>>);

impl InferenceProvider {
    pub async fn run() -> anyhow::Result<()> {
        edgecell_provider_common::run_and_serve!(Self::default(), "edgecell-inference", serve)
    }

    fn pool(&self) -> anyhow::Result<Arc<InferencePool>> {
        self.0.get().cloned().context("inference provider not initialised")
    }

    /// Runs `inputs` through `model` on the pool without blocking the async runtime.
    async fn run_one(&self, model: String, inputs: Vec<wit::Tensor>) -> anyhow::Result<Result<Vec<wit::Tensor>, wit::InferenceError>> {
        let pool = self.pool()?;
        let inputs = inputs.into_iter().map(tensor_to_core).collect();
        let out = tokio::task::spawn_blocking(move || pool.run(&model, inputs)).await.context("inference task failed")?;
        Ok(out.map(|t| t.into_iter().map(tensor_to_wit).collect()).map_err(inference_error))
    }
}

impl Provider for InferenceProvider {
    async fn init(&self, init: impl ProviderInitConfig) -> anyhow::Result<()> {
        let config = ProviderConfig::from_map(init.get_config()).context("invalid inference configuration")?;
        let registry = tokio::task::spawn_blocking(move || ModelRegistry::load(&config.registry).map(|r| (r, config.pool)))
            .await
            .context("model loading task failed")?
            .context("failed to load models")?;
        let (registry, pool_config) = registry;
        let names: Vec<String> = registry.list().into_iter().map(|m| m.name).collect();
        let pool = InferencePool::new(Arc::new(registry), pool_config).context("failed to start the inference pool")?;
        info!(provider_id = init.get_provider_id(), models = ?names, "inference provider starting");
        let _ = self.0.set(Arc::new(pool));
        Ok(())
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        if let Some(pool) = self.0.get() {
            let s = pool.stats();
            info!(stats = ?s, "inference provider stopping");
        }
        Ok(())
    }
}

impl wit::Handler<Option<Context>> for InferenceProvider {
    async fn list_models(&self, cx: Option<Context>) -> anyhow::Result<Vec<wit::ModelInfo>> {
        let _span = edgecell_provider_common::invocation_span("inference.list-models", cx.as_ref()).entered();
        Ok(self.pool()?.list_models().into_iter().map(model_info).collect())
    }

    async fn model_metadata(&self, cx: Option<Context>, name: String) -> anyhow::Result<Result<wit::ModelInfo, wit::InferenceError>> {
        let _span = edgecell_provider_common::invocation_span("inference.model-metadata", cx.as_ref()).entered();
        Ok(self.pool()?.model_metadata(&name).map(model_info).map_err(inference_error))
    }

    async fn run(
        &self,
        cx: Option<Context>,
        model: String,
        inputs: Vec<wit::Tensor>,
    ) -> anyhow::Result<Result<Vec<wit::Tensor>, wit::InferenceError>> {
        let span = edgecell_provider_common::invocation_span("inference.run", cx.as_ref());
        self.run_one(model, inputs).instrument(span).await
    }

    async fn run_batch(
        &self,
        cx: Option<Context>,
        model: String,
        batch: Vec<Vec<wit::Tensor>>,
    ) -> anyhow::Result<Vec<Result<Vec<wit::Tensor>, wit::InferenceError>>> {
        let span = edgecell_provider_common::invocation_span("inference.run-batch", cx.as_ref());
        let pool = self.pool()?;
        let batch = batch.into_iter().map(|inputs| inputs.into_iter().map(tensor_to_core).collect()).collect();
        let out = tokio::task::spawn_blocking(move || pool.run_batch(&model, batch)).instrument(span).await.context("inference task failed")?;
        Ok(out.into_iter().map(|r| r.map(|t| t.into_iter().map(tensor_to_wit).collect()).map_err(inference_error)).collect())
    }
}
