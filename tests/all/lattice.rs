//! End to end on a real wasmCloud 1.9 lattice: nats-server (JetStream), wadm 0.21.1 and a
//! wasmcloud-host 0.27.1 host, all built from the crate registry by tools/lattice and started
//! here on 127.0.0.1 and free ports; `wadm/local.wadm.yaml` deployed through wadm; V2X, sensor
//! and video messages published like a user's producer would; verdicts, fused states, video
//! events and the metrics provider's `/metrics` checked; with tests/lattice/traced.wadm.yaml,
//! one message's OpenTelemetry traces followed from the producer through the messaging
//! provider, the host and the capability providers to an OTLP receiver, and on in the
//! verdict's headers; everything stopped by PID at the end.
//!
//! Needs `make lattice` (binaries in `EDGECELL_LATTICE_BIN`, artifacts in `build/`). Without
//! `EDGECELL_LATTICE_BIN` the tests say so and pass, unless `EDGECELL_REQUIRE_LATTICE=1` (set
//! by `make test` / `make e2e`), where a missing lattice is a failure.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::v2x::{beacon, radiotap_cam};
use edgecell_tests::support::{children_of, lattice_bin, metric_sum, repo, Lattice, TraceSink};

async fn request(client: &async_nats::Client, subject: &str, body: Vec<u8>) -> serde_json::Value {
    let reply = tokio::time::timeout(Duration::from_secs(30), client.request(subject.to_owned(), body.into()))
        .await
        .unwrap_or_else(|_| panic!("no reply on {subject} within 30 s"))
        .unwrap_or_else(|e| panic!("request on {subject}: {e}"));
    serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("reply on {subject} is not JSON ({e}): {:?}", reply.payload))
}

/// Puts a video frame into the cache through the kv-cache provider's ingest subject; false when
/// no provider stored it within 2 s.
async fn put_frame(client: &async_nats::Client, key: &str, data: &[u8]) -> bool {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("edgecell-namespace", "frames");
    headers.insert("edgecell-key", key);
    headers.insert("edgecell-ttl-ms", "60000");
    let put = client.request_with_headers("edgecell.cache.put.video-analytics", headers, data.to_vec().into());
    match tokio::time::timeout(Duration::from_secs(2), put).await {
        Ok(Ok(m)) => serde_json::from_slice::<serde_json::Value>(&m.payload).is_ok_and(|v| v["version"].is_u64()),
        _ => false,
    }
}

/// Waits until an actor answers on `subject` (its subscription is live), retrying every 2 s.
/// Whether an actor's reply is the kv-cache provider's `unavailable` for a caller whose link
/// has not reached the provider yet: `deployed` can come before wadm's link puts are delivered.
fn cache_link_pending(payload: &[u8]) -> bool {
    String::from_utf8_lossy(payload).contains("has no link to this kv-cache provider")
}

///
/// The 1.9 host may also publish a link put to a provider that is still starting, after its
/// start-up data was taken and before it listens for puts; that put is lost. The providers
/// take such links from the lattice themselves (`edgecell_provider_common::links`), so "no
/// link (yet)" replies stop without a restart; how many there were is reported.
async fn wait_ready(client: &async_nats::Client, subject: &str, body: &[u8]) -> (Duration, u32) {
    let start = Instant::now();
    let mut pending = 0u32;
    loop {
        let ask = client.request(subject.to_owned(), body.to_vec().into());
        match tokio::time::timeout(Duration::from_secs(2), ask).await {
            Ok(Ok(reply)) if cache_link_pending(&reply.payload) => {
                pending += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Ok(_)) => return (start.elapsed(), pending),
            _ => {}
        }
        assert!(start.elapsed() < Duration::from_secs(90), "nothing answers on {subject} 90 s after `deployed` ({pending} link-pending replies)");
    }
}

/// The PID of the host's kv-cache provider process.
fn cache_provider_pid(host_pid: u32) -> Option<u32> {
    children_of(host_pid).into_iter().find(|(_, cmd)| cmd.contains("kv-cache") || cmd.contains("kv_cache")).map(|(pid, _)| pid)
}

/// Makes the kv-cache provider forget an actor's link (the first whose component id contains
/// `actor`), as a lost link put leaves it: the host still has the link, the provider does not.
/// Sends the provider the host's own link delete message, built from the lattice's link list.
/// Returns the actor's component id.
async fn make_cache_provider_forget_link(client: &async_nats::Client, actor: &str) -> String {
    let reply = client.request("wasmbus.ctl.v1.default.link.get", Vec::new().into()).await.unwrap();
    let links: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    let link = links["response"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["target"] == "edgecell-kv-cache" && l["source_id"].as_str().is_some_and(|s| s.contains(actor)))
        .unwrap_or_else(|| panic!("no {actor} → kv-cache link in {links}"))
        .clone();
    let forget = serde_json::json!({
        "source_id": link["source_id"], "target": link["target"], "name": link["name"],
        "wit_namespace": link["wit_namespace"], "wit_package": link["wit_package"], "interfaces": link["interfaces"],
    });
    client.publish("wasmbus.rpc.default.edgecell-kv-cache.linkdefs.del", serde_json::to_vec(&forget).unwrap().into()).await.unwrap();
    client.flush().await.unwrap();
    link["source_id"].as_str().unwrap_or_default().to_owned()
}

/// Everything received on `subject` until `quiet` passes without a message.
async fn drain(sub: &mut async_nats::Subscriber, quiet: Duration) -> Vec<async_nats::Message> {
    use futures::StreamExt as _;
    let mut out = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(quiet, sub.next()).await {
        out.push(m);
    }
    out
}

#[test]
fn v2x_fusion_and_video_on_a_real_wasmcloud_lattice() {
    let Some(bin) = lattice_bin() else { return };
    let lattice = Lattice::start(&bin, &["tier=edge", "region=local"]);
    let started = Instant::now();
    lattice.deploy("wadm/local.wadm.yaml");
    eprintln!("deployed on host {} in {:.1} s", lattice.host_id, started.elapsed().as_secs_f64());

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(async {
        // the requests below carry their own 30 s timeouts, not async-nats' default 10 s
        let client = async_nats::ConnectOptions::new().request_timeout(Some(Duration::from_secs(30))).connect(&lattice.nats.url).await.unwrap();
        // `deployed` means wadm placed everything; the messaging provider's subscriptions may
        // still be on their way: each actor must answer once before the checks start
        let ready = [
            wait_ready(&client, "edgecell.iot.in.ready", b"[]").await,
            wait_ready(&client, "edgecell.v2x.in.ready", &beacon(1, 0.5, -3000.0, 10.0)).await,
        ];
        eprintln!("actors answering (time, link-pending replies) {ready:?} after `deployed`");
        // the sensor-fusion component's first cache calls through a new link have been seen to
        // fail right after `deployed` (the invocation traps, no reply): warm that path with
        // another filter (husky, test1.bag) until one of its messages is answered
        let husky = std::fs::read(repo().join("data/fusion/test1.bag")).unwrap();
        let husky_cfg = edgecell_fusion::preset("robot-localization-test1").unwrap();
        let warm = edgecell_fusion::wire::envelopes_from_bag(&husky, &husky_cfg, "husky").unwrap().envelopes;
        let mut warmed = None;
        for (k, e) in warm.iter().take(30).enumerate() {
            let ask = client.request("edgecell.sensors.in.husky", serde_json::to_vec(e).unwrap().into());
            match tokio::time::timeout(Duration::from_secs(3), ask).await {
                Ok(Ok(reply)) if cache_link_pending(&reply.payload) => tokio::time::sleep(Duration::from_millis(200)).await,
                Ok(Ok(_)) => {
                    warmed = Some(k);
                    break;
                }
                _ => {}
            }
        }
        eprintln!("sensor-fusion answered after {warmed:?} unanswered warm-up messages");
        assert!(warmed.is_some(), "sensor-fusion never answered a husky message");

        // ---- a link put the kv-cache provider missed is taken from the lattice: no restart.
        // (sensor-fusion answers a store failure with an error naming it; the v2x actor would
        // validate without history)
        let provider_pid = cache_provider_pid(lattice.host.pid());
        let actor = make_cache_provider_forget_link(&client, "sensor_fusion").await;
        let (mut forgotten, mut answered) = (0u32, None);
        for (k, e) in warm.iter().skip(warmed.map_or(0, |w| w + 1)).take(150).enumerate() {
            let ask = client.request("edgecell.sensors.in.husky", serde_json::to_vec(e).unwrap().into());
            match tokio::time::timeout(Duration::from_secs(3), ask).await {
                Ok(Ok(reply)) if cache_link_pending(&reply.payload) => forgotten += 1,
                Ok(Ok(_)) if forgotten > 0 => {
                    answered = Some(k);
                    break;
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("link of {actor} forgotten by the kv-cache provider: {forgotten} link-pending replies, answered again at message {answered:?}");
        assert!(forgotten > 0, "the provider never refused {actor} after its link was deleted there");
        assert!(answered.is_some(), "the kv-cache provider did not take {actor}'s link back from the lattice");
        assert_eq!(cache_provider_pid(lattice.host.pid()), provider_pid, "the kv-cache provider was restarted");

        // ---- V2X: a plausible beacon is accepted, a 590 m jump in 1 s rejected and reported
        let mut reports = client.subscribe("edgecell.v2x.report.local").await.unwrap();
        let ego = br#"{"type":2,"rcvTime":0.5,"pos":[0,0,0],"spd":[0,0,0],"hed":[1,0,0]}"#.to_vec();
        client.publish("edgecell.v2x.in.local", ego.into()).await.unwrap();
        client.flush().await.unwrap();
        let first = request(&client, "edgecell.v2x.in.local", beacon(5, 1.0, 300.0, 10.0)).await;
        let second = request(&client, "edgecell.v2x.in.local", beacon(5, 2.0, 310.0, 10.0)).await;
        assert_eq!(second["verdict"], "accepted", "{first}\n{second}");
        let jump = request(&client, "edgecell.v2x.in.local", beacon(5, 3.0, 900.0, 10.0)).await;
        assert_eq!(jump["verdict"], "rejected", "{jump}");
        let got = drain(&mut reports, Duration::from_secs(2)).await;
        let bodies: Vec<String> = got.iter().map(|m| String::from_utf8_lossy(&m.payload).into_owned()).collect();
        assert_eq!(got.len(), 1, "one misbehaviour report: {first}\n{second}\n{jump}\n{bodies:#?}");
        assert_eq!(got[0].subject.as_str(), "edgecell.v2x.report.local");
        let report: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
        assert_eq!(report["reported_pseudonym"], 5);
        let failed: Vec<&str> = report["failed_checks"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
        assert!(failed.contains(&"position_consistency"), "{failed:?}");
        // malformed input is refused by the actor; the lattice keeps serving
        client.publish("edgecell.v2x.in.local", b"{not json".to_vec().into()).await.unwrap();
        let after = request(&client, "edgecell.v2x.in.local", beacon(6, 4.0, 350.0, 10.0)).await;
        assert!(after["verdict"].is_string(), "{after}");
        // a real CAM in the radiotap frame it was captured in, and its GeoNetworking packet:
        // verdicts on the same station
        let (frame, gn) = radiotap_cam();
        // (received now, years after it was sent: the freshness check rejects it)
        let mut cams_rejected = 0.0;
        for (form, body) in [("radiotap", frame.clone()), ("geonetworking", gn)] {
            let v = request(&client, "edgecell.v2x.in.local", body).await;
            assert_eq!(v["station_id"], 2_624_309_139u64, "{form}: {v}");
            if v["verdict"] == "rejected" {
                cams_rejected += 1.0;
            }
        }

        // ---- producers' cache puts reach only the namespaces opened to them: not the V2X
        // validator's configuration or its verified-certificate cache
        for (ns, key) in [("v2x", "config"), ("v2x", "cert4/0011223344556677")] {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("edgecell-namespace", ns);
            headers.insert("edgecell-key", key);
            let ask = client.request_with_headers("edgecell.cache.put.v2x-validator", headers, b"[security]\nrequire_signature = false\n".to_vec().into());
            let reply = tokio::time::timeout(Duration::from_secs(5), ask).await.unwrap().unwrap();
            let body = String::from_utf8_lossy(&reply.payload);
            assert!(body.contains("not open to producers"), "put into {ns}/{key}: {body}");
        }

        // ---- sensor fusion: test2.bag, one request per message, in bag order
        let bag = std::fs::read(repo().join("data/fusion/test2.bag")).unwrap();
        let cfg = edgecell_fusion::preset("robot-localization-test2").unwrap();
        let envelopes = edgecell_fusion::wire::envelopes_from_bag(&bag, &cfg, "jackal").unwrap().envelopes;
        let t0 = Instant::now();
        let mut last = serde_json::Value::Null;
        // Delivery on the lattice is at most once. Now and then a wRPC call between the host
        // and a provider gets no answer: wrpc-transport-nats 0.29.0 registers a reply inbox with
        // its background task through a channel that an unbiased `select!` may serve after the
        // reply itself, which is then dropped (seen about once in thousands of calls on a loaded
        // 2-core machine). The invocation fails after the 10 s RPC timeout and its message gets
        // no reply; its state update may or may not have happened, so it is not sent again
        // (the filter would refuse the repeated timestamp). Such losses are counted and bounded:
        // 0 in 6121 on an idle machine, 4-5 with two CPU burners on the same 2 cores; the host
        // log then shows the component trapping on a provider call that timed out ("data
        // transmission timed out") or whose result stream ended early ("unexpected end of file").
        let mut lost = Vec::new();
        for (k, e) in envelopes.iter().enumerate() {
            let ask = client.request("edgecell.sensors.in.jackal", serde_json::to_vec(e).unwrap().into());
            match tokio::time::timeout(Duration::from_secs(12), ask).await {
                Ok(Ok(reply)) => last = serde_json::from_slice(&reply.payload).unwrap(),
                _ => lost.push(k),
            }
        }
        eprintln!("fusion: {} messages in {:.1} s, lost {lost:?}", envelopes.len(), t0.elapsed().as_secs_f64());
        assert!(lost.len() <= 12, "{} of {} fusion messages got no reply: {lost:?}", lost.len(), envelopes.len());
        let last: edgecell_fusion::wire::StateMessage = serde_json::from_value(last).unwrap();
        let p = last.state.pose;
        let err = ((p.x - 1.0206f64).powi(2) + (p.y - 3.4292f64).powi(2) + (p.z - 0.7419f64).powi(2)).sqrt();
        assert!(err <= 0.1383, "fused final position ({}, {}, {}) is {err} m from robot_localization's", p.x, p.y, p.z);

        // ---- video: frames put in the kv-cache provider by NATS, referenced by handle
        let avi_bytes = std::fs::read(repo().join("data/video/vtest_2s_mjpeg.avi")).unwrap();
        let avi = edgecell_vision::MjpegAvi::parse(&avi_bytes).unwrap();
        let mut events = client.subscribe("edgecell.video.events.vtest").await.unwrap();
        let mut frames = 0u64;
        let mut tracks = std::collections::BTreeSet::new();
        let mut video_lost = Vec::new();
        // replies saying the video actor's cache link has not reached the provider yet (the
        // provider takes it from the lattice: see `wait_ready`)
        let mut link_pending = 0u32;
        for f in avi.frames() {
            let f = f.unwrap();
            let key = format!("vtest/{}", f.index);
            assert!(put_frame(&client, &key, f.data).await, "cache put of frame {}", f.index);
            let r = edgecell_vision::wire::FrameRef {
                stream: "vtest".into(),
                sequence: f.index,
                timestamp_ns: f.timestamp_ns,
                format: edgecell_vision::PixelFormat::Jpeg,
                width: 0,
                height: 0,
                namespace: "frames".into(),
                key: key.clone(),
            };
            // a frame whose invocation was lost (see the fusion loop) is sent again, as an
            // at-least-once producer would: a redelivered frame does not move the stream state
            let body = serde_json::to_vec(&r).unwrap();
            let mut answered = None;
            let mut attempts = 0;
            while attempts < 3 {
                let ask = client.request("edgecell.video.frames.vtest", body.clone().into());
                match tokio::time::timeout(Duration::from_secs(12), ask).await {
                    Ok(Ok(reply)) if cache_link_pending(&reply.payload) && link_pending < 200 => {
                        link_pending += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(Ok(reply)) => {
                        answered = Some(reply);
                        break;
                    }
                    _ => {
                        video_lost.push(f.index);
                        attempts += 1;
                    }
                }
            }
            let reply = answered.unwrap_or_else(|| panic!("frame {} got no reply in 3 attempts", f.index));
            let s: edgecell_vision::wire::FrameSummary = serde_json::from_slice(&reply.payload)
                .unwrap_or_else(|e| panic!("frame {}: {e}: {}", f.index, String::from_utf8_lossy(&reply.payload)));
            assert_eq!(s.sequence, f.index);
            tracks.extend(s.tracks.iter().map(|t| t.0));
            frames += 1;
        }
        let mut crossings = BTreeMap::<String, usize>::new();
        for m in drain(&mut events, Duration::from_secs(2)).await {
            let evs: Vec<serde_json::Value> = serde_json::from_slice(&m.payload).unwrap();
            for e in evs.iter().filter(|e| e["kind"] == "crossed") {
                *crossings.entry(format!("{} {}", e["region"].as_str().unwrap(), e["direction"].as_str().unwrap())).or_default() += 1;
            }
        }
        eprintln!(
            "video: {frames} frames, tracks {tracks:?}, crossings {crossings:?}, attempts lost on frames {video_lost:?}, \
             {link_pending} replies before the cache link was live"
        );
        assert!(video_lost.len() <= 2, "{} video invocations got no reply: frames {video_lost:?}", video_lost.len());
        assert_eq!(tracks.len(), 5, "{tracks:?}");
        assert_eq!(crossings.get("walkway-west forward"), Some(&1), "{crossings:?}");
        assert_eq!(crossings.get("walkway-east backward"), Some(&2), "{crossings:?}");

        // ---- the metrics provider counted what the actors did
        let text = lattice.scrape();
        assert!(metric_sum(&text, "v2x_messages_total", &[("verdict", "accepted")]) >= 2.0, "{text}");
        assert_eq!(metric_sum(&text, "v2x_messages_total", &[("verdict", "rejected")]), 1.0 + cams_rejected, "{text}");
        let fused = metric_sum(&text, "fusion_inputs_total", &[("filter", "jackal")]);
        // a lost message is counted or not, depending on where its invocation failed
        let n = envelopes.len() as f64;
        assert!(fused <= n && fused >= n - lost.len() as f64, "{fused} inputs counted for {n} messages, {} lost\n{text}", lost.len());
        // a lost or refused invocation (cache link pending) may have counted its frame before
        // it failed
        let counted = metric_sum(&text, "video_frames_total", &[("stream", "vtest")]);
        let f = frames as f64;
        let failed = video_lost.len() as f64 + f64::from(link_pending);
        assert!(counted >= f && counted <= f + failed, "{counted} frames counted for {frames}, {failed} failed attempts\n{text}");
    })));
    if let Err(panic) = outcome {
        eprintln!(
            "--- host log (tail) ---\n{}\n--- wadm log (tail) ---\n{}\n--- nats-server warnings ---\n{}",
            lattice.host.log_tail(),
            lattice.wadm.log_tail(),
            lattice.nats.log_warnings()
        );
        // EDGECELL_KEEP_LATTICE_LOGS=<dir>: keep the host and wadm logs of a failed run
        if let Some(dir) = std::env::var_os("EDGECELL_KEEP_LATTICE_LOGS") {
            let dir = std::path::PathBuf::from(dir);
            let _ = std::fs::create_dir_all(&dir);
            for name in ["host.log", "wadm.log"] {
                let _ = std::fs::copy(lattice.tmp.path().join(name), dir.join(name));
            }
            let _ = std::fs::copy(lattice.nats.log_path(), dir.join("nats.log"));
            eprintln!("logs kept in {}", dir.display());
        }
        std::panic::resume_unwind(panic);
    }

    lattice.undeploy("edgecell");
    lattice.shutdown();
}

/// The verdict's result for check `name`: (ran, failed).
fn check_of(verdict: &serde_json::Value, name: &str) -> (bool, bool) {
    let c = verdict["checks"].as_array().and_then(|cs| cs.iter().find(|c| c["name"] == name));
    match c {
        Some(c) if c["skipped"] != true => (true, c["confidence"].as_f64().is_some_and(|x| x < 0.5)),
        _ => (false, false),
    }
}

/// Secured CAMs on the lattice, the validator configured only through its manifest's named
/// config (trust anchor and the AA as a CA certificate, TOML in the `config` property, as a
/// GitOps manifest would carry it): a CAM signed with the AT's certificate is verified; a later
/// one naming the AT by digest only is verified from the certificate another instance cached
/// in the kv-cache provider; a replay, copies of one CAM published at once (one passes) and a
/// flipped signature bit are rejected.
#[test]
fn signed_cams_are_verified_on_the_lattice() {
    use edgecell_v2x::observation::unix_ns_to_its_ms;
    use edgecell_v2x::security::build;
    let Some(bin) = lattice_bin() else { return };
    let its_now = || {
        let unix_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        unix_ns_to_its_ms(u64::try_from(unix_ns).unwrap())
    };
    let chain = build::CamChain::new(u32::try_from(its_now() / 1000 - 3600).unwrap()).unwrap();
    // a JSON string is a YAML double-quoted scalar
    let config = serde_json::to_string(&chain.trust_toml_with_aa()).unwrap();
    let lattice = Lattice::start(&bin, &["tier=edge", "region=local"]);
    lattice.deploy_with("wadm/v2x.wadm.yaml", &[("reporter-id: \"1001\"", &format!("reporter-id: \"1001\"\n              config: {config}"))]);
    let cam: &[u8] = include_bytes!("../../crates/v2x/testdata/c-its-parser-cam.uper");
    let sign = |with_cert: bool| build::signed_data(&chain.at, cam, 36, its_now() * 1000, with_cert).unwrap();
    check_deployed(lattice, "edgecell-v2x", async |lattice: &Lattice| {
        let client = async_nats::connect(&lattice.nats.url).await.unwrap();
        wait_ready(&client, "edgecell.v2x.in.ready", &beacon(1, 0.5, -3000.0, 10.0)).await;
        let first = sign(true);
        let a = request(&client, "edgecell.v2x.in.local", first.clone()).await;
        assert_eq!(a["signed"], true, "{a}");
        assert_eq!(check_of(&a, "signature"), (true, false), "{a}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let b = request(&client, "edgecell.v2x.in.local", sign(false)).await;
        assert_eq!(b["signed"], true, "by digest: {b}");
        assert_eq!(check_of(&b, "replay"), (true, false), "{b}");
        let again = request(&client, "edgecell.v2x.in.local", first).await;
        assert_eq!(check_of(&again, "replay"), (true, true), "replayed: {again}");
        assert_eq!(again["verdict"], "rejected");
        let mut bad = sign(false);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let c = request(&client, "edgecell.v2x.in.local", bad).await;
        assert_eq!((c["signed"].clone(), c["verdict"].clone()), (serde_json::json!(false), serde_json::json!("rejected")), "{c}");
        assert_eq!(check_of(&c, "signature"), (true, true), "{c}");
        // copies of one new CAM published at once, handled by concurrent instances: the replay
        // mark is committed with set-many-if through the provider, so one copy passes
        tokio::time::sleep(Duration::from_millis(20)).await;
        let copy = sign(false);
        let copies = futures::future::join_all((0..6).map(|_| request(&client, "edgecell.v2x.in.local", copy.clone()))).await;
        for v in &copies {
            assert_eq!(check_of(v, "signature"), (true, false), "every copy is verified: {v}");
        }
        // passed = ran and did not fail (an error reply or a skipped check is not a pass)
        let fresh: Vec<bool> = copies.iter().map(|v| check_of(v, "replay") == (true, false)).collect();
        assert_eq!(fresh.iter().filter(|f| **f).count(), 1, "copies passing the replay check: {fresh:?}");
        eprintln!("signed CAMs on the lattice: verified with certificate, by digest; replay, concurrent copies and bad signature rejected");
    });
}

/// The three-tier topology of `manifests/nats/` (cut to one edge site): the host runs on an
/// edge leaf node without JetStream and reaches the lattice's buckets on the hub's JetStream
/// through domain `core`; wadm runs on the hub. The V2X app deploys; beacons published at the
/// edge and at the hub are both answered by the actor on the edge host.
#[test]
fn an_edge_host_on_a_leaf_node_serves_the_lattice() {
    let Some(bin) = lattice_bin() else { return };
    let lattice = Lattice::start_on_leaf(&bin, &["tier=edge", "region=edge-a"]);
    lattice.deploy("wadm/v2x.wadm.yaml");
    check_deployed(lattice, "edgecell-v2x", async |lattice: &Lattice| {
        let edge = async_nats::connect(lattice.client_url()).await.unwrap();
        let hub = async_nats::connect(&lattice.nats.url).await.unwrap();
        let (ready, pending) = wait_ready(&edge, "edgecell.v2x.in.ready", &beacon(1, 0.5, -3000.0, 10.0)).await;
        eprintln!("actor answering at the edge {ready:?} after `deployed` ({pending} link-pending replies)");
        let at_edge = request(&edge, "edgecell.v2x.in.edge-a", beacon(3, 1.0, 300.0, 10.0)).await;
        assert!(at_edge["verdict"].is_string(), "{at_edge}");
        // from the hub, across the leaf connection, to the same actor and its history
        let from_hub = request(&hub, "edgecell.v2x.in.edge-a", beacon(3, 2.0, 310.0, 10.0)).await;
        assert_eq!(from_hub["verdict"], "accepted", "{from_hub}");
        let (ran, failed) = check_of(&from_hub, "position_consistency");
        assert!(ran && !failed, "the second beacon was judged against the first: {from_hub}");
        // the metrics provider on the edge host counted both; an invocation records its
        // metrics after it published its verdict, so the last count may land just after the
        // reply: scrape until it does (at most 50 times, 100 ms apart)
        let mut text = lattice.scrape();
        for _ in 0..50 {
            if metric_sum(&text, "v2x_messages_total", &[]) >= 3.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            text = lattice.scrape();
        }
        assert!(metric_sum(&text, "v2x_messages_total", &[]) >= 3.0, "{text}");
    });
}

/// Runs `checks` on a lattice with `app` deployed, on a 2-thread runtime; when they fail,
/// prints the host's and wadm's log tails first. Then undeploys `app` and stops the lattice.
fn check_deployed(lattice: Lattice, app: &str, checks: impl AsyncFnOnce(&Lattice)) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(checks(&lattice))));
    if let Err(panic) = outcome {
        eprintln!(
            "--- host log (tail) ---\n{}\n--- wadm log (tail) ---\n{}\n--- nats-server warnings ---\n{}",
            lattice.host.log_tail(),
            lattice.wadm.log_tail(),
            lattice.nats.log_warnings()
        );
        std::panic::resume_unwind(panic);
    }
    lattice.undeploy(app);
    lattice.shutdown();
}

/// Tracing on the lattice: a V2X message with a producer's W3C `traceparent`, through
/// edgecell's messaging provider (tests/lattice/traced.wadm.yaml), to a host exporting OTLP to
/// a receiver started here; see [`check_trace`] for what is followed.
#[test]
fn a_producers_trace_is_continued_through_the_lattice_and_exported() {
    let Some(bin) = lattice_bin() else { return };
    let lattice = Lattice::start_traced(&bin, &["tier=edge", "region=local"]);
    lattice.deploy("tests/lattice/traced.wadm.yaml");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(async {
        let client = async_nats::connect(&lattice.nats.url).await.unwrap();
        wait_ready(&client, "edgecell.v2x.in.ready", &beacon(1, 0.5, -3000.0, 10.0)).await;
        for (k, t) in [(1.0, 300.0), (2.0, 310.0)] {
            let v = request(&client, "edgecell.v2x.in.local", beacon(9, k, t, 10.0)).await;
            assert!(v["verdict"].is_string(), "{v}");
        }
        let trace = edgecell::produce::TraceContext::random();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(edgecell::produce::TRACEPARENT_HEADER, trace.traceparent().as_str());
        let ask = client.request_with_headers("edgecell.v2x.in.local", headers, beacon(9, 3.0, 320.0, 10.0).into());
        let reply = tokio::time::timeout(Duration::from_secs(30), ask).await.expect("traced request timed out").unwrap();
        let back = reply.headers.as_ref().and_then(|h| h.get(edgecell::produce::TRACEPARENT_HEADER)).map(|v| v.as_str().to_owned());
        let back = back.unwrap_or_else(|| panic!("the verdict has no traceparent: {:?}", reply.headers));
        let verdict: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(verdict["verdict"], "accepted", "{verdict}");
        check_trace(lattice.traces.as_ref().unwrap(), &trace, &back).await;
    })));
    if let Err(panic) = outcome {
        eprintln!("--- host log (tail) ---\n{}\n--- nats-server warnings ---\n{}", lattice.host.log_tail(), lattice.nats.log_warnings());
        if let Some(sink) = &lattice.traces {
            let mut by_service = BTreeMap::<String, usize>::new();
            for s in sink.spans() {
                *by_service.entry(s["service"].to_string()).or_default() += 1;
            }
            eprintln!("--- spans received, by service ---\n{by_service:?}");
        }
        std::panic::resume_unwind(panic);
    }
    lattice.undeploy("edgecell-traced");
    lattice.shutdown();
}

fn spans_of<'a>(spans: &'a [serde_json::Value], trace_id: &str) -> Vec<&'a serde_json::Value> {
    spans.iter().filter(|s| s["trace_id"] == trace_id).collect()
}

fn has(spans: &[&serde_json::Value], service: &str, name: &str) -> bool {
    spans.iter().any(|s| s["service"] == service && s["name"] == name)
}

/// Checks one message's spans, waiting up to 30 s for the exporters' batches.
///
/// wasmCloud 1.9.2 cannot keep one trace across its own invocation boundary: wasmcloud-runtime
/// 0.12 sets span parents through tracing-opentelemetry 0.29 while the host's layer is 0.32,
/// so the spans inside an invocation (and the provider calls made from it) start a second
/// trace. Checked here, with the two traces tied by time:
/// - the producer's trace: its span → the messaging provider's `messaging.handle-message` →
///   the host's `component_invocation`;
/// - the invocation's trace (the one the verdict's `traceparent` names): the host's
///   `call_handle_message` → the kv-cache, metrics and messaging providers' spans for the
///   calls the actor made, `messaging.publish` of the verdict among them — one tree, every
///   provider span a child of a host span, and it runs inside the `component_invocation`.
async fn check_trace(sink: &TraceSink, trace: &edgecell::produce::TraceContext, verdict_traceparent: &str) {
    let producer_trace = trace.trace_id_hex();
    let producer_span = format!("{:016x}", trace.span_id);
    let invocation_trace = verdict_traceparent.split('-').nth(1).unwrap_or_default().to_owned();
    assert_eq!(invocation_trace.len(), 32, "verdict traceparent {verdict_traceparent}");
    let start = Instant::now();
    let all = loop {
        let all = sink.spans();
        let (a, b) = (spans_of(&all, &producer_trace), spans_of(&all, &invocation_trace));
        let complete = has(&a, "edgecell-messaging-nats", "messaging.handle-message")
            && has(&a, "wasmcloud-host", "component_invocation")
            && has(&b, "wasmcloud-host", "call_handle_message")
            && ["edgecell-kv-cache", "edgecell-metrics", "edgecell-messaging-nats"].iter().all(|svc| b.iter().any(|s| s["service"] == *svc));
        if complete {
            break all;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let show = |v: &[&serde_json::Value]| v.iter().map(|s| format!("{} {}", s["service"], s["name"])).collect::<Vec<_>>();
            panic!("after 30 s: producer trace {producer_trace}: {:?}; invocation trace {invocation_trace}: {:?}", show(&a), show(&b));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (a, b) = (spans_of(&all, &producer_trace), spans_of(&all, &invocation_trace));
    let line = |s: &&serde_json::Value| format!("{} {} {}<-{}", s["service"], s["name"], s["span_id"], s["parent_span_id"]);
    let summary: Vec<String> = a.iter().chain(b.iter()).map(line).collect();
    eprintln!("trace {producer_trace} → {invocation_trace}: {} + {} spans\n  {}", a.len(), b.len(), summary.join("\n  "));
    let find = |v: &[&serde_json::Value], service: &str, name: &str| -> serde_json::Value {
        v.iter().find(|s| s["service"] == service && s["name"] == name).map(|s| (*s).clone()).unwrap_or_default()
    };
    // the producer's trace: producer → messaging provider → host
    let handle = find(&a, "edgecell-messaging-nats", "messaging.handle-message");
    assert_eq!(handle["parent_span_id"], producer_span.as_str(), "{summary:#?}");
    let invocation = find(&a, "wasmcloud-host", "component_invocation");
    assert_eq!(invocation["parent_span_id"], handle["span_id"], "{summary:#?}");
    // the invocation's trace: one tree under the host's call, providers below host spans
    let call = find(&b, "wasmcloud-host", "call_handle_message");
    let ids: std::collections::BTreeSet<&str> = b.iter().filter_map(|s| s["span_id"].as_str()).collect();
    for s in &b {
        let parent = s["parent_span_id"].as_str().unwrap_or_default();
        assert!(parent.is_empty() && s["span_id"] == call["span_id"] || ids.contains(parent), "{} outside the tree: {summary:#?}", line(s));
        if s["service"] != "wasmcloud-host" {
            let parent_service = b.iter().find(|p| p["span_id"] == parent).map(|p| p["service"].clone());
            assert_eq!(parent_service, Some(serde_json::json!("wasmcloud-host")), "{}: {summary:#?}", line(s));
        }
    }
    assert!(has(&b, "edgecell-messaging-nats", "messaging.publish"), "{summary:#?}");
    let within = |inner: &serde_json::Value, outer: &serde_json::Value| {
        inner["start_unix_nano"].as_u64() >= outer["start_unix_nano"].as_u64() && inner["end_unix_nano"].as_u64() <= outer["end_unix_nano"].as_u64()
    };
    assert!(within(&call, &invocation), "the call ran inside the producer's invocation: {call} {invocation}");
}

/// Fault injection: the kv-cache provider process is killed (SIGKILL) in the middle of a V2X
/// stream. The host restarts it, the stream completes, and what was lost is counted: messages
/// in flight while the provider was down get no verdict, and the cache's contents (the
/// per-pseudonym histories) are gone, so the next beacon of a pseudonym counts as its first.
#[test]
fn the_host_restarts_a_killed_cache_provider_and_the_stream_completes() {
    let Some(bin) = lattice_bin() else { return };
    let lattice = Lattice::start(&bin, &["tier=edge", "region=local"]);
    lattice.deploy("wadm/v2x.wadm.yaml");
    let host_pid = lattice.host.pid();
    let providers = || children_of(host_pid);
    let kv_cache = || providers().into_iter().find(|(_, cmd)| cmd.contains("kv-cache") || cmd.contains("kv_cache"));
    let (victim, _) = kv_cache().unwrap_or_else(|| panic!("no kv-cache provider among the host's children: {:?}", providers()));

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (before, during, after, restart) = rt.block_on(async {
        let client = async_nats::connect(&lattice.nats.url).await.unwrap();
        // `deployed` can come before the messaging provider's subscription is live: the count
        // of answers before the kill starts once the actor has answered one message
        wait_ready(&client, "edgecell.v2x.in.ready", &beacon(1, 0.5, -3000.0, 10.0)).await;
        let ask = |i: u64| {
            let client = client.clone();
            async move {
                let body = beacon(100 + i % 10, 1.0 + (i / 10) as f64 * 0.5, 300.0 + 5.0 * (i / 10) as f64, 10.0);
                match tokio::time::timeout(Duration::from_secs(2), client.request("edgecell.v2x.in.fault", body.into())).await {
                    Ok(Ok(m)) => serde_json::from_slice::<serde_json::Value>(&m.payload).ok().filter(|v| v["verdict"].is_string()).is_some(),
                    _ => false,
                }
            }
        };
        let mut before = 0;
        for i in 0..100 {
            before += u32::from(ask(i).await);
        }
        let killed = Instant::now();
        assert!(std::process::Command::new("kill").args(["-KILL", &victim.to_string()]).status().unwrap().success());
        // keep the stream going while the provider is down and until a verdict comes back
        let mut during = (0u32, 0u32); // (answered, lost)
        let mut i = 100;
        loop {
            if ask(i).await {
                during.0 += 1;
                i += 1;
                break;
            }
            during.1 += 1;
            i += 1;
            assert!(killed.elapsed() < Duration::from_secs(60), "no verdict 60 s after the kill; providers: {:?}", providers());
        }
        let restart = killed.elapsed();
        let mut after = 0;
        let mut tail = 0; // answered among the last 50
        for j in 0..100 {
            let ok = ask(i + j).await;
            after += u32::from(ok);
            tail += u32::from(ok && j >= 50);
        }
        // seen here with the e2e test running beside it on 2 cores: now and then one message
        // after the restart gets no verdict within 2 s (not explained yet, see the issue note)
        assert!(tail >= 48, "only {tail}/50 answered once recovered");
        (before, during, after, restart)
    });
    let (new_pid, _) = kv_cache().unwrap_or_else(|| panic!("no kv-cache provider after the restart: {:?}", providers()));
    eprintln!(
        "kv-cache provider pid {victim} killed; pid {new_pid} serving after {:.2} s; before: 100/{before} answered, \
         while down: {} lost, after: 100/{after} answered",
        restart.as_secs_f64(),
        during.1
    );
    assert_ne!(new_pid, victim, "the host started a new provider process");
    assert_eq!(before, 100);
    // right after the restart a message may still miss its 2 s deadline on a loaded machine;
    // those are counted above, and the last 50 must all be answered
    assert!(after >= 95, "{after}/100 answered after the restart");
    eprintln!("lost after the restart: {}", 100 - after);
    // the metrics provider saw the store failures of the messages that did run during the outage
    let text = lattice.scrape();
    eprintln!("v2x_store_errors_total = {}", metric_sum(&text, "v2x_store_errors_total", &[]));
    lattice.undeploy("edgecell-v2x");
    lattice.shutdown();
}

/// `make up` / `make down` (scripts/lattice.sh), a newcomer's way onto a lattice: nats-server,
/// wadm and a host start on loopback, and `down` stops exactly those processes. (`up` was
/// broken for sessions without a test noticing: nats-server refused its command line.)
#[test]
fn make_up_starts_a_lattice_and_make_down_stops_it() {
    use edgecell_tests::support::free_port;
    let Some(bin) = lattice_bin() else { return };
    let run = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = |what: &str| {
        std::process::Command::new("bash")
            .arg(repo().join("scripts/lattice.sh"))
            .arg(what)
            .current_dir(repo())
            .env("EDGECELL_LATTICE_BIN", &bin)
            .env("EDGECELL_LATTICE_RUN", run.path())
            .env("EDGECELL_NATS_PORT", port.to_string())
            .env("EDGECELL_NATS_LEAF_PORT", free_port().to_string())
            .env("EDGECELL_NATS_HTTP_PORT", free_port().to_string())
            .output()
            .unwrap()
    };
    let pids = || -> Vec<u32> {
        ["nats", "wadm", "host"]
            .iter()
            .filter_map(|n| std::fs::read_to_string(run.path().join(format!("{n}.pid"))).ok())
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    };
    // (a zombie waiting for its parent to reap it has stopped)
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    };
    let up = script("up");
    let said = String::from_utf8_lossy(&up.stdout).into_owned() + &String::from_utf8_lossy(&up.stderr);
    let started = pids();
    let checks = std::panic::catch_unwind(|| {
        assert!(up.status.success(), "{said}");
        assert!(said.contains(&format!("lattice up on nats://127.0.0.1:{port}")), "{said}");
        assert_eq!(started.len(), 3, "{said}");
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("NATS listening");
        std::thread::sleep(Duration::from_secs(2));
        assert!(started.iter().all(|p| alive(*p)), "a process of `up` ended: {said}");
    });
    let down = script("down");
    let deadline = Instant::now() + Duration::from_secs(20);
    while started.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Err(e) = checks {
        std::panic::resume_unwind(e);
    }
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(started.iter().all(|p| !alive(*p)), "`down` left a process behind");
}
