//! Answers producers' put requests (`<prefix>.<keyspace>`, see `edgecell_kv_cache::ingest`) on
//! the lattice's NATS connection, so frames can be referenced by handle on the bus.

use std::sync::Arc;

use edgecell_kv_cache::ingest;
use edgecell_kv_cache::Cache;
use futures::StreamExt as _;
use tracing::{debug, warn};

/// Subscribes `<prefix>.*` and serves puts into the namespaces the cache's ingest policy opens
/// until the subscription ends.
pub async fn serve(nats: Arc<async_nats::Client>, cache: Arc<Cache>, prefix: String) -> anyhow::Result<()> {
    let mut sub = nats.subscribe(format!("{prefix}.*")).await?;
    debug!(prefix, "serving cache puts");
    while let Some(msg) = sub.next().await {
        let headers = msg.headers.as_ref();
        let header = |name: &str| headers.and_then(|h| h.get(name)).map(async_nats::HeaderValue::as_str);
        let outcome = ingest::put(&cache, &prefix, &msg.subject, header, msg.payload.to_vec());
        if let Err(e) = &outcome {
            warn!(subject = %msg.subject, error = %e, "cache put refused");
        }
        if let Some(reply) = msg.reply {
            if let Err(e) = nats.publish(reply, ingest::reply(&outcome).into()).await {
                warn!(error = %e, "failed to answer cache put");
            }
        }
    }
    Ok(())
}
