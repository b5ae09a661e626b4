//! The audit record (`audit::record`, written by `stream` for every decision
//! carried out), the response code details of local replies, and the
//! per-route, per-consumer counter, through the stream as the shell drives
//! it.

use super::{consumers_json, NOW, SECRET1};
use crate::decision::Flow;
use crate::fake_host::FakeHost;
use crate::stream::Worker;

const STREAM: u32 = 7;

/// Gateway consumers; rule 0 covers route `api` and lets only consumer1 in,
/// rule 1 covers route `open-api` without authentication.
fn worker() -> Worker {
    let config = format!(
        r#"{{{},"global_auth":false,"_rules_":[
            {{"_match_route_":["api"],"allow":["consumer1"]}},
            {{"_match_route_":["other-api"],"allow":["consumer2"]}}]}}"#,
        consumers_json()
    );
    let mut worker = Worker::new(1);
    assert!(worker.configure(config.as_bytes(), &mut FakeHost::new(NOW)));
    worker
}

fn request(path: &str, route: &str) -> FakeHost {
    let mut host = FakeHost::new(NOW)
        .request("GET", "gw.example.com", path)
        .with_property("route_name", route);
    host.context = STREAM;
    host
}

fn run(worker: &Worker, host: &mut FakeHost) -> Flow {
    worker.new_stream(STREAM).on_request_headers(host, true)
}

/// A token for consumer1 from the token endpoint on route `api`, and its jti.
fn issue(worker: &Worker) -> (String, String) {
    let mut host = request(
        &format!(
            "/oauth2/token?grant_type=client_credentials&client_id=id1&client_secret={SECRET1}"
        ),
        "api",
    );
    assert_eq!(run(worker, &mut host), Flow::Stop);
    let reply = host.reply.clone().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.details, "edge_auth_token_issued");
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();
    let record = host.audit().unwrap().to_string();
    let jti = record
        .split(' ')
        .find_map(|f| f.strip_prefix("jti="))
        .unwrap()
        .to_string();
    assert_eq!(
        record,
        format!("decision=token_issued reason=- rule=0 consumer=consumer1 kind=gateway sub=consumer1 jti={jti}")
    );
    assert_eq!(jti.len(), 36, "a UUID: {jti}");
    assert!(!record.contains(&token));
    assert_eq!(
        host.counter_exact("route.api.consumer.consumer1.metric.edge_auth_token_issued"),
        1
    );
    (token, jti)
}

#[test]
fn an_allowed_gateway_token_is_recorded_with_its_consumer_rule_and_jti() {
    let worker = worker();
    let (token, jti) = issue(&worker);
    for _ in 0..2 {
        // The second time from the verified-token cache: the same record.
        let mut host =
            request("/data", "api").with_header("authorization", &format!("Bearer {token}"));
        assert_eq!(run(&worker, &mut host), Flow::Continue);
        assert_eq!(
            host.audit(),
            Some(format!("decision=allowed reason=- rule=0 consumer=consumer1 kind=gateway sub=consumer1 jti={jti}").as_str())
        );
        assert!(!host.audit().unwrap().contains(&token));
        assert_eq!(
            host.counter_exact("route.api.consumer.consumer1.metric.edge_auth_allowed"),
            1
        );
    }
}

#[test]
fn every_local_reply_carries_details_and_a_record() {
    let worker = worker();
    let (token, _) = issue(&worker);

    // No token at all.
    let mut host = request("/data", "api");
    assert_eq!(run(&worker, &mut host), Flow::Stop);
    let reply = host.reply.clone().unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.details, "edge_auth_denied{no_bearer_token}");
    assert_eq!(
        host.audit(),
        Some("decision=denied reason=no_bearer_token rule=0 consumer=- kind=- sub=- jti=-")
    );
    assert_eq!(
        host.counter_exact("route.api.consumer.-.metric.edge_auth_denied"),
        1
    );

    // A forged signature.
    let at = token.rfind('.').unwrap() + 2;
    let flipped = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);
    let mut host =
        request("/data", "api").with_header("authorization", &format!("Bearer {forged}"));
    assert_eq!(run(&worker, &mut host), Flow::Stop);
    assert_eq!(
        host.reply.as_ref().unwrap().details,
        "edge_auth_denied{bad_signature}"
    );
    assert!(host
        .audit()
        .unwrap()
        .starts_with("decision=denied reason=bad_signature rule=0 "));

    // consumer1's token on the route that allows only consumer2.
    let mut host =
        request("/data", "other-api").with_header("authorization", &format!("Bearer {token}"));
    assert_eq!(run(&worker, &mut host), Flow::Stop);
    assert_eq!(host.reply.as_ref().unwrap().status, 403);
    assert_eq!(
        host.reply.as_ref().unwrap().details,
        "edge_auth_denied{consumer_not_in_allow_list}"
    );
    // The refused consumer is named: who was turned away.
    assert!(host.audit().unwrap().starts_with(
        "decision=denied reason=consumer_not_in_allow_list rule=1 consumer=consumer1 kind=gateway sub=consumer1 jti="
    ));
    assert_eq!(
        host.counter_exact("route.other-api.consumer.consumer1.metric.edge_auth_denied"),
        1
    );

    // The token endpoint refusing a client.
    let mut host = request(
        "/oauth2/token?grant_type=client_credentials&client_id=id1&client_secret=wrong",
        "api",
    );
    assert_eq!(run(&worker, &mut host), Flow::Stop);
    assert_eq!(
        host.reply.as_ref().unwrap().details,
        "edge_auth_token_refused{invalid_client}"
    );
    assert_eq!(
        host.audit(),
        Some("decision=token_refused reason=invalid_client rule=0 consumer=- kind=- sub=- jti=-")
    );
}

#[test]
fn unconfigured_routes_share_one_metric_label_and_open_requests_are_recorded() {
    let worker = worker();
    let mut host = request("/data", "some-route-nobody-configured");
    assert_eq!(run(&worker, &mut host), Flow::Continue);
    assert_eq!(
        host.audit(),
        Some("decision=open reason=- rule=- consumer=- kind=- sub=- jti=-")
    );
    assert_eq!(
        host.counter_exact("route.-.consumer.-.metric.edge_auth_open"),
        1
    );
    assert_eq!(host.exact_counters.borrow().len(), 1);
}
