//! `edgecell-lattice otlp-sink`: a small OTLP/HTTP trace receiver for tests and local runs.
//!
//! It accepts what the OpenTelemetry OTLP exporters send over HTTP (`POST`, protobuf
//! `ExportTraceServiceRequest`, uncompressed), decodes it with the `opentelemetry-proto` types
//! and appends one JSON line per span to a file, so a test can follow one trace across the
//! processes of a lattice (producer, host, providers). It binds loopback only.

use std::fs::File;
use std::io::{BufWriter, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context as _};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message as _;
use serde_json::{json, Map};

/// The largest request body accepted (the SDK batches 512 spans by default, well below this).
const MAX_BODY_BYTES: u64 = 32 << 20;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value_json(v: Option<&Value>) -> serde_json::Value {
    match v {
        Some(Value::StringValue(s)) => json!(s),
        Some(Value::BoolValue(b)) => json!(b),
        Some(Value::IntValue(i)) => json!(i),
        Some(Value::DoubleValue(d)) => json!(d),
        Some(Value::BytesValue(b)) => json!(hex(b)),
        Some(Value::ArrayValue(a)) => a.values.iter().map(|x| value_json(x.value.as_ref())).collect(),
        Some(Value::KvlistValue(l)) => attributes_json(&l.values),
        None => serde_json::Value::Null,
    }
}

fn attributes_json(attrs: &[KeyValue]) -> serde_json::Value {
    let map: Map<String, serde_json::Value> =
        attrs.iter().map(|kv| (kv.key.clone(), value_json(kv.value.as_ref().and_then(|v| v.value.as_ref())))).collect();
    serde_json::Value::Object(map)
}

/// One JSON object per span: service (resource `service.name`), scope, trace, span and parent
/// ids (lowercase hex, parent empty for a root), name, kind, times and attributes.
pub fn span_lines(request: &ExportTraceServiceRequest) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for rs in &request.resource_spans {
        let resource = rs.resource.as_ref().map(|r| attributes_json(&r.attributes)).unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or(serde_json::Value::Null);
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            for s in &ss.spans {
                out.push(json!({
                    "service": service,
                    "scope": scope,
                    "trace_id": hex(&s.trace_id),
                    "span_id": hex(&s.span_id),
                    "parent_span_id": hex(&s.parent_span_id),
                    "name": s.name,
                    "kind": s.kind,
                    "start_unix_nano": s.start_time_unix_nano,
                    "end_unix_nano": s.end_time_unix_nano,
                    "attributes": attributes_json(&s.attributes),
                }));
            }
        }
    }
    out
}

fn respond(request: tiny_http::Request, status: u16, body: Vec<u8>, content_type: &str) {
    let header = tiny_http::Header::from_bytes("Content-Type", content_type).ok();
    let mut response = tiny_http::Response::from_data(body).with_status_code(status);
    if let Some(h) = header {
        response = response.with_header(h);
    }
    // a client that went away is its own problem; the sink keeps serving
    let _ = request.respond(response);
}

/// Serves until the process is stopped. Prints `listening=<addr>` on stdout once bound.
pub fn run(listen: SocketAddr, out: &Path) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() {
        bail!("the sink listens on loopback only, not {listen}");
    }
    let server = tiny_http::Server::http(listen).map_err(|e| anyhow::anyhow!("failed to listen on {listen}: {e}"))?;
    let file = File::options().create(true).append(true).open(out).with_context(|| format!("failed to open {}", out.display()))?;
    let mut file = BufWriter::new(file);
    let bound = server.server_addr().to_ip().context("the sink is not on an IP socket")?;
    println!("listening={bound}");
    std::io::stdout().flush().context("stdout")?;
    for mut request in server.incoming_requests() {
        if *request.method() != tiny_http::Method::Post {
            respond(request, 405, b"POST an ExportTraceServiceRequest".to_vec(), "text/plain");
            continue;
        }
        let encoded = request.headers().iter().find(|h| h.field.equiv("Content-Encoding")).map(|h| h.value.as_str().to_owned());
        if let Some(enc) = encoded.filter(|e| !e.eq_ignore_ascii_case("identity")) {
            respond(request, 415, format!("content-encoding {enc} is not supported").into_bytes(), "text/plain");
            continue;
        }
        let mut body = Vec::new();
        if let Err(e) = request.as_reader().take(MAX_BODY_BYTES + 1).read_to_end(&mut body) {
            respond(request, 400, format!("reading the body: {e}").into_bytes(), "text/plain");
            continue;
        }
        if body.len() as u64 > MAX_BODY_BYTES {
            respond(request, 413, b"request body too large".to_vec(), "text/plain");
            continue;
        }
        match ExportTraceServiceRequest::decode(body.as_slice()) {
            Ok(export) => {
                for line in span_lines(&export) {
                    writeln!(file, "{line}").context("writing a span")?;
                }
                file.flush().context("writing spans")?;
                respond(request, 200, ExportTraceServiceResponse::default().encode_to_vec(), "application/x-protobuf");
            }
            Err(e) => respond(request, 400, format!("not an OTLP trace export: {e}").into_bytes(), "text/plain"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue { key: k.into(), value: Some(AnyValue { value: Some(Value::StringValue(v.into())) }) }
    }

    fn request() -> ExportTraceServiceRequest {
        let span = Span {
            trace_id: vec![0xab; 16],
            span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
            parent_span_id: vec![],
            name: "handle_message".into(),
            attributes: vec![kv("component.ref", "file:///x.wasm")],
            ..Span::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource { attributes: vec![kv("service.name", "wasmcloud-host")], ..Resource::default() }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope { name: "s".into(), ..InstrumentationScope::default() }),
                    spans: vec![span],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn spans_become_json_lines_with_hex_ids() {
        let lines = span_lines(&request());
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l["service"], "wasmcloud-host");
        assert_eq!(l["trace_id"], "ab".repeat(16));
        assert_eq!(l["span_id"], "0102030405060708");
        assert_eq!(l["parent_span_id"], "");
        assert_eq!(l["name"], "handle_message");
        assert_eq!(l["attributes"]["component.ref"], "file:///x.wasm");
    }

    #[test]
    fn the_sink_decodes_a_posted_export_and_refuses_garbage() {
        let dir = std::env::temp_dir().join(format!("edgecell-otlp-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("spans.jsonl");
        let _ = std::fs::remove_file(&out);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let path = out.clone();
        std::thread::spawn(move || run(addr, &path));
        let post = |body: &[u8]| -> String {
            for _ in 0..50 {
                if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                    let head = format!(
                        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    s.write_all(head.as_bytes()).unwrap();
                    s.write_all(body).unwrap();
                    let mut reply = String::new();
                    let _ = s.read_to_string(&mut reply);
                    return reply;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            panic!("the sink did not start")
        };
        let ok = post(&request().encode_to_vec());
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        let bad = post(b"\xff\xff\xff");
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["name"], "handle_message");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn non_loopback_addresses_are_refused() {
        let e = run("0.0.0.0:0".parse().unwrap(), Path::new("/nonexistent")).unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    }
}
