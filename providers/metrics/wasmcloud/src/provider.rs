//! wRPC bindings, handlers and link hooks of the metrics provider over `edgecell-metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use anyhow::Context as _;
use edgecell_metrics::{MetricsServer, Registry};
use tracing::info;
use wasmcloud_provider_sdk::{Context, LinkConfig, LinkDeleteInfo, Provider, ProviderInitConfig};

use crate::config::{self, ProviderConfig};

wit_bindgen_wrpc::generate!({
    world: "metrics-provider",
    path: "../../../wit",
    generate_all,
});

use exports::edgecell::metrics::recorder as wit_metrics;

edgecell_metrics::wit_conversions!(wit_metrics);

#[derive(Default)]
struct State {
    registry: OnceLock<Arc<Registry>>,
    server: Mutex<Option<MetricsServer>>,
    /// `component` label per linked component (source id).
    components: RwLock<HashMap<String, String>>,
    /// Link sweeps when unlinked components call.
    recovery: edgecell_provider_common::links::Recovery,
}

/// The provider: one registry for every linked component, each series labelled with its component.
#[derive(Clone, Default)]
pub struct MetricsProvider(Arc<State>);

impl MetricsProvider {
    pub async fn run() -> anyhow::Result<()> {
        edgecell_provider_common::run_and_serve!(
            Self::default(),
            "edgecell-metrics",
            serve,
            |provider: &Self, connection: &'static wasmcloud_provider_sdk::provider::ProviderConnection| {
                provider.0.recovery.attach(connection);
            }
        )
    }

    fn registry(&self) -> anyhow::Result<&Arc<Registry>> {
        self.0.registry.get().context("metrics provider not initialised")
    }

    /// The labels every series of the caller carries: the link's `component` label, or the
    /// component id for a caller whose link has not reached this provider (a link sweep then
    /// takes it from the lattice, see `edgecell_provider_common::links`).
    fn caller_labels(&self, cx: Option<&Context>) -> anyhow::Result<Vec<(String, String)>> {
        let source = cx.and_then(|c| c.component.as_deref()).context("invocation without a source component")?;
        let label = self.0.components.read().unwrap_or_else(PoisonError::into_inner).get(source).cloned();
        let label = label.unwrap_or_else(|| {
            self.0.recovery.unlinked_caller(self);
            source.to_owned()
        });
        Ok(vec![("component".to_owned(), label)])
    }
}

impl Provider for MetricsProvider {
    async fn init(&self, init: impl ProviderInitConfig) -> anyhow::Result<()> {
        let config = ProviderConfig::from_map(init.get_config()).context("invalid metrics configuration")?;
        let registry = Arc::new(Registry::new(config.registry));
        let server = MetricsServer::start(config.listen, Arc::clone(&registry), config.allow_non_loopback)
            .context("failed to start the /metrics endpoint")?;
        info!(provider_id = init.get_provider_id(), url = server.url(), "metrics provider starting");
        let _ = self.0.registry.set(registry);
        *self.0.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(server);
        Ok(())
    }

    async fn receive_link_config_as_target(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let label = config::component_label(link.config, link.source_id);
        info!(source = link.source_id, component = label, "component linked");
        self.0.components.write().unwrap_or_else(PoisonError::into_inner).insert(link.source_id.to_owned(), label);
        Ok(())
    }

    async fn delete_link_as_target(&self, info: impl LinkDeleteInfo) -> anyhow::Result<()> {
        self.0.components.write().unwrap_or_else(PoisonError::into_inner).remove(info.get_source_id());
        Ok(())
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        // dropping the server stops the endpoint
        self.0.server.lock().unwrap_or_else(PoisonError::into_inner).take();
        info!("metrics provider stopping");
        Ok(())
    }
}

type MetricsResult = anyhow::Result<Result<(), wit_metrics::MetricsError>>;

impl wit_metrics::Handler<Option<Context>> for MetricsProvider {
    async fn register(&self, cx: Option<Context>, name: String, help: String, kind: wit_metrics::MetricKind) -> MetricsResult {
        let _span = edgecell_provider_common::invocation_span("metrics.register", cx.as_ref()).entered();
        Ok(self.registry()?.register(&name, &help, metric_kind(kind)).map_err(metrics_error))
    }

    async fn counter_add(&self, cx: Option<Context>, name: String, labels: Vec<wit_metrics::Label>, delta: f64) -> MetricsResult {
        let _span = edgecell_provider_common::invocation_span("metrics.counter-add", cx.as_ref()).entered();
        let own = self.caller_labels(cx.as_ref())?;
        Ok(self.registry()?.counter_add(&name, &metric_labels(labels), &own, delta).map_err(metrics_error))
    }

    async fn gauge_set(&self, cx: Option<Context>, name: String, labels: Vec<wit_metrics::Label>, value: f64) -> MetricsResult {
        let _span = edgecell_provider_common::invocation_span("metrics.gauge-set", cx.as_ref()).entered();
        let own = self.caller_labels(cx.as_ref())?;
        Ok(self.registry()?.gauge_set(&name, &metric_labels(labels), &own, value).map_err(metrics_error))
    }

    async fn gauge_add(&self, cx: Option<Context>, name: String, labels: Vec<wit_metrics::Label>, delta: f64) -> MetricsResult {
        let _span = edgecell_provider_common::invocation_span("metrics.gauge-add", cx.as_ref()).entered();
        let own = self.caller_labels(cx.as_ref())?;
        Ok(self.registry()?.gauge_add(&name, &metric_labels(labels), &own, delta).map_err(metrics_error))
    }

    async fn histogram_observe(&self, cx: Option<Context>, name: String, labels: Vec<wit_metrics::Label>, value: f64) -> MetricsResult {
        let _span = edgecell_provider_common::invocation_span("metrics.histogram-observe", cx.as_ref()).entered();
        let own = self.caller_labels(cx.as_ref())?;
        Ok(self.registry()?.histogram_observe(&name, &metric_labels(labels), &own, value).map_err(metrics_error))
    }

    async fn record_batch(&self, cx: Option<Context>, updates: Vec<wit_metrics::Update>) -> anyhow::Result<Vec<Result<(), wit_metrics::MetricsError>>> {
        let _span = edgecell_provider_common::invocation_span("metrics.record-batch", cx.as_ref()).entered();
        let own = self.caller_labels(cx.as_ref())?;
        Ok(record_batch(self.registry()?, updates, &own))
    }
}
