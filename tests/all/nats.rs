//! The embedded host on a real nats-server: subjects feed an actor, its replies go back on NATS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecell::nats::NatsConnection;
use edgecell::{Actor, InstancePool, Runtime, RuntimeConfig, Services};

pub use edgecell_tests::support::NatsServer;

/// An embedded host on `server` under `config` (its bus on NATS, a local cache), with the
/// probe actor loaded.
fn probe_host(server: &NatsServer, config: RuntimeConfig) -> (NatsConnection, Runtime, Arc<Actor>) {
    let conn = NatsConnection::connect(&server.url).unwrap();
    let (mut services, _local) = Services::local(edgecell_kv_cache::CacheConfig::default());
    services.bus = conn.bus();
    let runtime = Runtime::new(config, services).unwrap();
    let actor = Arc::new(runtime.load_actor(crate::common::spec("probe", crate::common::probe_path())).unwrap());
    (conn, runtime, actor)
}

#[test]
fn subjects_feed_the_actor_and_replies_travel_back_over_nats() {
    let server = NatsServer::start();
    let (conn, runtime, actor) = probe_host(&server, RuntimeConfig::default());
    let pool = Arc::new(InstancePool::new(actor, 2));
    let feed = conn.feed(&pool, &["edgecell.probe.in".to_owned()], 2).unwrap();

    // a separate client, as a user's producer would be
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let replies: Vec<String> = rt.block_on(async {
        let client = async_nats::connect(&server.url).await.unwrap();
        let mut out = Vec::new();
        for i in 0..5 {
            let reply = tokio::time::timeout(Duration::from_secs(5), client.request("edgecell.probe.in", format!("hello-{i}").into()))
                .await
                .expect("reply within 5 s")
                .unwrap();
            out.push(String::from_utf8(reply.payload.to_vec()).unwrap());
        }
        // fire-and-forget messages are handled too
        for _ in 0..20 {
            client.publish("edgecell.probe.in", "no-reply".into()).await.unwrap();
        }
        client.flush().await.unwrap();
        out
    });
    assert_eq!(replies, (1..=5).map(|i| format!("{i}:hello-{}", i - 1)).collect::<Vec<_>>());

    let deadline = Instant::now() + Duration::from_secs(10);
    while feed.stats().handled.load(std::sync::atomic::Ordering::Relaxed) < 25 {
        assert!(Instant::now() < deadline, "only {:?} handled", feed.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    let count = runtime.services().cache.get("probe", "probe", "messages").unwrap().unwrap();
    assert_eq!(count.value, b"25");
    assert_eq!(feed.stats().host_errors.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A message the host cannot deliver (here: no instance slot is free, the host's only one is
/// held elsewhere) is answered on its reply subject with the error, so the requester does not
/// wait out its timeout.
#[test]
fn a_message_the_host_cannot_deliver_is_answered_with_the_error() {
    let server = NatsServer::start();
    let (conn, _runtime, actor) = probe_host(&server, RuntimeConfig { max_instances: 1, ..RuntimeConfig::default() });
    let _held = actor.instantiate().unwrap();
    let pool = Arc::new(InstancePool::new(actor, 1));
    let feed = conn.feed(&pool, &["edgecell.probe.in".to_owned()], 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let reply = rt.block_on(async {
        let client = async_nats::connect(&server.url).await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), client.request("edgecell.probe.in", "hello".into())).await.expect("a reply").unwrap()
    });
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    assert_eq!(feed.stats().host_errors.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// Returns once the server has processed everything `client` sent before, and this client
/// has read everything the server sent it before the echo.
async fn round_trip(client: &async_nats::Client) {
    let inbox = client.new_inbox();
    let mut echo = client.subscribe(inbox.clone()).await.unwrap();
    client.publish(inbox, "".into()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut echo)).await.unwrap().unwrap();
}

/// Stopping a feed by draining it delivers every message the client had already received
/// (dropping it would lose them), and takes no new ones.
#[test]
fn a_drained_feed_delivers_what_its_client_holds_and_takes_nothing_after() {
    use std::sync::atomic::Ordering::Relaxed;
    const N: u64 = 3000;
    let server = NatsServer::start();
    let (conn, runtime, actor) = probe_host(&server, RuntimeConfig::default());
    let pool = Arc::new(InstancePool::new(actor, 1));
    let feed = conn.feed(&pool, &["edgecell.probe.in".to_owned()], 1).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let producer = rt.block_on(async {
        let client = async_nats::connect(&server.url).await.unwrap();
        for _ in 0..N {
            client.publish("edgecell.probe.in", "no-reply".into()).await.unwrap();
        }
        // the server has taken all of them (and routed them to the host's connection): a
        // message to ourselves comes back after it processed everything sent before it
        // (`flush` alone only empties the client's write buffer)
        round_trip(&client).await;
        client
    });
    // a round trip on the host's own connection: everything the server sent it before the
    // echo has reached the feed's subscription
    let host = conn.client().clone();
    conn.handle().block_on(round_trip(&host));
    let before = feed.stats().handled.load(Relaxed);
    assert!(before < N, "all {N} were handled before the drain began; the test proves nothing");
    let stats = Arc::clone(&feed.stats_handle());
    assert!(feed.drain(Instant::now() + Duration::from_secs(60)), "not drained within 60 s");
    assert_eq!(stats.handled.load(Relaxed), N, "{before} handled when the drain began");
    let count = runtime.services().cache.get("probe", "probe", "messages").unwrap().unwrap();
    assert_eq!(count.value, N.to_string().as_bytes());

    // unsubscribed: what comes now is for other hosts
    rt.block_on(async {
        producer.publish("edgecell.probe.in", "late".into()).await.unwrap();
        producer.flush().await.unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stats.received.load(Relaxed), N);
}

/// With no server at the address, connecting is an error within its bound, not a host that
/// hangs at its first subscription (the client retries the initial connect in the background).
#[test]
fn connecting_to_no_server_fails_within_its_bound() {
    // a port just bound and released: nothing listens there
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = NatsConnection::connect(&format!("nats://127.0.0.1:{port}")).unwrap_err();
    assert!(matches!(err, edgecell::nats::NatsError::Connect { .. }), "{err}");
}
