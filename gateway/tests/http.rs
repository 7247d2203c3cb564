//! In-process HTTP tests: a real gateway on 127.0.0.1:0 driven by a plain HTTP client.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentfleet_gateway::http::REQUEST_LOG_DROPPED_HEADER;
use agentfleet_protocol::gateway::{
    AGENT_INDEX_HEADER, ChatResponse, FaultProfile, HeldRequests, RequestRecord, TASK_ID_HEADER,
};
use serde_json::{Value, json};
use support::{TestGateway, chat_body, wait_for, within};

async fn json_body(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().expect("ASCII Retry-After").to_owned());
    let body = response.json().await.expect("JSON body");
    (status, retry_after, body)
}

async fn request_log(gateway: &TestGateway, query: &str) -> Vec<RequestRecord> {
    let (status, text) = gateway.get_text(&format!("/admin/requests{query}")).await;
    assert_eq!(status, 200, "GET /admin/requests{query} answered {text}");
    serde_json::from_str(&text).expect("request log is a JSON array of RequestRecord")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_request_gets_the_same_answer_and_usage() {
    let gateway = TestGateway::start().await;
    let body = chat_body("agentfleet-sim-small", &["hello world!", "abc"]);
    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = gateway
            .client
            .post(gateway.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .expect("chat request");
        assert_eq!(response.status(), 200);
        answers.push(
            response
                .json::<ChatResponse>()
                .await
                .expect("ChatResponse body"),
        );
    }
    let (first, second) = (&answers[0], &answers[1]);
    assert_eq!(first.choices, second.choices);
    assert_eq!(first.usage, second.usage);
    assert_eq!(first.object, "chat.completion");
    assert_eq!(first.model, "agentfleet-sim-small");
    assert_eq!(first.choices[0].message.role, "assistant");
    // 12 + 3 characters -> ceil(15 / 4) = 4 prompt tokens.
    assert_eq!(first.usage.prompt_tokens, 4);
    assert!(
        (8..=31).contains(&first.usage.completion_tokens),
        "{:?}",
        first.usage
    );
    assert_eq!(
        first.usage.total_tokens,
        first.usage.prompt_tokens + first.usage.completion_tokens
    );

    let other: ChatResponse = gateway
        .chat("a different prompt")
        .await
        .json()
        .await
        .expect("ChatResponse body");
    assert_ne!(other.choices[0].message, first.choices[0].message);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_400_with_an_openai_error() {
    let gateway = TestGateway::start().await;
    let cases: [(&str, Option<&str>); 4] = [
        ("not json", None),
        (r#"{"model": "m"}"#, None),
        (r#"{"model": "m", "messages": []}"#, Some("messages")),
        (
            r#"{"model": "", "messages": [{"role": "user", "content": "x"}]}"#,
            Some("model"),
        ),
    ];
    for (body, param) in cases {
        let response = gateway
            .client
            .post(gateway.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("chat request");
        let (status, retry_after, error) = json_body(response).await;
        assert_eq!(status, 400, "body {body} answered {error}");
        assert_eq!(retry_after, None);
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
        assert!(
            !error["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{error}"
        );
        assert_eq!(error["error"]["param"].as_str(), param, "{error}");
    }
    let statuses: Vec<u16> = request_log(&gateway, "")
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![400; 4]);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_answers_its_status_then_the_gateway_recovers() {
    let gateway = TestGateway::start().await;
    let before_outage = Instant::now();
    let response = gateway
        .client
        .post(gateway.url("/admin/outage"))
        .json(&json!({"duration_ms": 400, "status": 503}))
        .send()
        .await
        .expect("POST /admin/outage");
    let (status, _, profile) = json_body(response).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["outages"][0]["duration_ms"], 400, "{profile}");

    let (status, _, error) = json_body(gateway.chat("during the outage").await).await;
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["error"]["type"], "server_error", "{error}");

    // Polled rather than slept through: the assertion is on when recovery was observed.
    let deadline = before_outage + Duration::from_secs(5);
    let mut observed = Vec::new();
    loop {
        let status = gateway.chat("after the outage").await.status().as_u16();
        observed.push(status);
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery 5 s after a 400 ms outage; answers {observed:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let recovered_after = before_outage.elapsed();
    assert!(
        recovered_after >= Duration::from_millis(400),
        "recovered after {recovered_after:?}, before the outage ended; answers {observed:?}"
    );
    assert!(
        observed[..observed.len() - 1].iter().all(|&s| s == 503),
        "{observed:?}"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_accompanies_429_and_503_only() {
    let gateway = TestGateway::start().await;

    gateway
        .put_faults_ok(json!({
            "retry_after_secs": 7,
            "outages": [{"start_ms": 0, "duration_ms": 60000, "status": 429}]
        }))
        .await;
    let (status, retry_after, error) = json_body(gateway.chat("x").await).await;
    assert_eq!(
        (status, retry_after.as_deref()),
        (429, Some("7")),
        "{error}"
    );
    assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");

    gateway
        .put_faults_ok(json!({"rate_503": 1.0, "retry_after_secs": 5}))
        .await;
    let (status, retry_after, _) = json_body(gateway.chat("x").await).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("5")));

    gateway
        .put_faults_ok(json!({"rate_500": 1.0, "retry_after_secs": 5}))
        .await;
    let (status, retry_after, _) = json_body(gateway.chat("x").await).await;
    assert_eq!((status, retry_after), (500, None));

    let logged: Vec<(u16, Option<u64>)> = request_log(&gateway, "")
        .await
        .iter()
        .map(|r| (r.status, r.retry_after_secs))
        .collect();
    assert_eq!(logged, vec![(429, Some(7)), (503, Some(5)), (500, None)]);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_refuses_concurrent_requests_beyond_the_limit() {
    let gateway = TestGateway::start().await;
    gateway
        .put_faults_ok(json!({"capacity": 2, "latency": {"kind": "fixed", "ms": 1500}}))
        .await;

    let held: Vec<_> = (0..2)
        .map(|i| {
            let request = gateway
                .client
                .post(gateway.url("/v1/chat/completions"))
                .json(&chat_body("m", &[&format!("held {i}")]));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let state = &gateway.state;
    wait_for(
        Duration::from_secs(5),
        "both held requests to be in flight",
        || async move {
            match state.engine.in_flight() {
                2 => Ok(()),
                other => Err(format!("{other} in flight")),
            }
        },
    )
    .await;

    let burst = futures::future::join_all((0..4).map(|_| gateway.chat("over capacity"))).await;
    for response in burst {
        let (status, retry_after, error) = json_body(response).await;
        assert_eq!(
            (status, retry_after.as_deref()),
            (429, Some("1")),
            "{error}"
        );
    }
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("gateway_requests_in_flight 2"),
        "{metrics}"
    );

    for handle in held {
        let status = within(Duration::from_secs(10), "a held request", handle)
            .await
            .expect("held request task")
            .expect("held request answered");
        assert_eq!(status, 200);
    }
    assert_eq!(gateway.state.engine.in_flight(), 0);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_error_rates_are_roughly_honoured_and_reproducible() {
    const REQUESTS: usize = 1000;
    let gateway = TestGateway::start().await;
    let profile = json!({"rate_429": 0.2, "rate_500": 0.1, "rate_503": 0.1, "seed": 42});
    gateway.put_faults_ok(profile.clone()).await;
    let mut statuses = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        statuses.push(
            gateway
                .chat(&format!("request {i}"))
                .await
                .status()
                .as_u16(),
        );
    }
    let share =
        |status: u16| statuses.iter().filter(|&&s| s == status).count() as f64 / REQUESTS as f64;
    // Five standard deviations of a binomial share at n = 1000 (0.063 for p = 0.2, 0.047 for
    // p = 0.1): a correct gateway essentially never fails this, a wrong mapping always does.
    for (status, rate, tolerance) in [(429, 0.2, 0.063), (500, 0.1, 0.047), (503, 0.1, 0.047)] {
        let observed = share(status);
        assert!(
            (observed - rate).abs() <= tolerance,
            "status {status}: observed share {observed}, configured {rate}"
        );
    }
    assert!((share(200) - 0.6).abs() <= 0.08, "200 share {}", share(200));

    gateway.put_faults_ok(profile).await;
    let mut replay = Vec::with_capacity(100);
    for i in 0..100 {
        replay.push(gateway.chat(&format!("replay {i}")).await.status().as_u16());
    }
    assert_eq!(
        replay,
        statuses[..100],
        "same seed, different fault sequence"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_validation_errors_name_the_field_and_keep_the_profile() {
    let gateway = TestGateway::start().await;
    gateway.put_faults_ok(json!({"rate_500": 0.5})).await;

    let cases = [
        (json!({"rate_429": 1.5}), "rate_429"),
        (
            json!({"latency": {"kind": "uniform", "min_ms": 50, "max_ms": 10}}),
            "latency.min_ms",
        ),
        (
            json!({"outages": [{"start_ms": 0, "duration_ms": 10, "status": 200}]}),
            "outages[0].status",
        ),
        (json!({"capacity": 0}), "capacity"),
    ];
    for (profile, field) in cases {
        let (status, _, error) = json_body(gateway.put_faults(profile.clone()).await).await;
        assert_eq!(status, 400, "{profile} answered {error}");
        assert_eq!(error["error"]["param"], field, "{profile} answered {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{message}");
    }

    let (status, _, error) = json_body(gateway.put_faults(json!({"rate_5OO": 0.1})).await).await;
    assert_eq!(status, 400, "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("rate_5OO"), "{message}");

    let response = gateway
        .client
        .post(gateway.url("/admin/outage"))
        .json(&json!({"duration_ms": 100, "status": 302}))
        .send()
        .await
        .expect("POST /admin/outage");
    let (status, _, error) = json_body(response).await;
    assert_eq!(
        (status, &error["error"]["param"]),
        (400, &json!("status")),
        "{error}"
    );

    let (status, text) = gateway.get_text("/admin/faults").await;
    assert_eq!(status, 200);
    let profile: FaultProfile = serde_json::from_str(&text).expect("FaultProfile");
    assert_eq!(
        profile,
        FaultProfile {
            rate_500: 0.5,
            ..FaultProfile::default()
        },
        "a rejected change must leave the profile alone"
    );
    gateway.shutdown().await;
}

async fn held(gateway: &TestGateway) -> HeldRequests {
    let (status, text) = gateway.get_text("/admin/held").await;
    assert_eq!(status, 200, "GET /admin/held answered {text}");
    serde_json::from_str(&text).expect("held requests are a JSON object of counts by task id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_task_is_answered_until_its_count_then_held_until_the_profile_changes() {
    let gateway = TestGateway::start().await;
    gateway
        .put_faults_ok(json!({"hangs": [{"task_id": "hung", "after_answers": 1}]}))
        .await;
    let task = [(TASK_ID_HEADER, "hung")];
    assert_eq!(
        gateway.chat_with_headers("step 1", &task).await.status(),
        200
    );

    let second = {
        let client = gateway.client.clone();
        let url = gateway.url("/v1/chat/completions");
        tokio::spawn(async move {
            client
                .post(url)
                .header(TASK_ID_HEADER, "hung")
                .json(&chat_body("agentfleet-sim-small", &["step 2"]))
                .send()
                .await
                .expect("the held request is answered in the end")
                .status()
                .as_u16()
        })
    };
    wait_for(
        Duration::from_secs(5),
        "the second call to be held",
        || async {
            let held = held(&gateway).await;
            if held.get("hung") == Some(&1) {
                Ok(())
            } else {
                Err(held)
            }
        },
    )
    .await;
    // Other requests are answered while the task hangs.
    assert_eq!(gateway.chat("another task").await.status(), 200);
    assert!(!second.is_finished(), "a held request must stay unanswered");
    assert_eq!(
        request_log(&gateway, "")
            .await
            .iter()
            .filter(|r| r.task_id.as_deref() == Some("hung"))
            .count(),
        1,
        "the held request is logged once it is answered, not before"
    );

    gateway.put_faults_ok(json!({})).await;
    let status = within(Duration::from_secs(5), "the held request's answer", second)
        .await
        .expect("the request task does not panic");
    assert_eq!(status, 200);
    assert!(held(&gateway).await.is_empty());
    let hung: Vec<u16> = request_log(&gateway, "")
        .await
        .iter()
        .filter(|r| r.task_id.as_deref() == Some("hung"))
        .map(|r| r.status)
        .collect();
    assert_eq!(hung, vec![200, 200]);

    let response = gateway
        .put_faults(json!({"hangs": [{"task_id": "", "after_answers": 0}]}))
        .await;
    let (status, _, error) = json_body(response).await;
    assert_eq!(
        (status, &error["error"]["param"]),
        (400, &json!("hangs[0].task_id")),
        "{error}"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_records_agent_index_task_id_and_filters_by_time() {
    let gateway = TestGateway::start().await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64;
    gateway
        .chat_with_headers(
            "x",
            &[(AGENT_INDEX_HEADER, "7"), (TASK_ID_HEADER, "task-42")],
        )
        .await;
    gateway.chat("y").await;

    let (status, text) = gateway.get_text("/admin/requests").await;
    assert_eq!(status, 200, "{text}");
    let records: Vec<RequestRecord> = serde_json::from_str(&text).expect("records");
    assert_eq!(records.len(), 2, "{records:?}");
    let tagged = &records[0];
    assert_eq!(
        (tagged.agent_index, tagged.task_id.as_deref(), tagged.status),
        (Some(7), Some("task-42"), 200)
    );
    assert!(tagged.at_ms >= before, "{tagged:?} arrived before {before}");
    assert_eq!(
        (records[1].agent_index, records[1].task_id.as_deref()),
        (None, None)
    );

    assert_eq!(
        request_log(&gateway, &format!("?since_ms={before}"))
            .await
            .len(),
        2
    );
    let future = before + 3_600_000;
    assert!(
        request_log(&gateway, &format!("?since_ms={future}"))
            .await
            .is_empty()
    );
    let (status, text) = gateway.get_text("/admin/requests?since_ms=yesterday").await;
    assert_eq!(status, 400, "{text}");

    let response = gateway
        .client
        .delete(gateway.url("/admin/requests"))
        .send()
        .await
        .expect("DELETE /admin/requests");
    assert_eq!(response.status(), 204);
    assert!(request_log(&gateway, "").await.is_empty());
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_request_log_drops_the_oldest_and_says_so() {
    let gateway = TestGateway::start_with(FaultProfile::default(), 2).await;
    for i in 0..3 {
        gateway
            .chat_with_headers("x", &[(AGENT_INDEX_HEADER, &i.to_string())])
            .await;
    }
    let response = gateway
        .client
        .get(gateway.url("/admin/requests"))
        .send()
        .await
        .expect("GET /admin/requests");
    let dropped = response
        .headers()
        .get(REQUEST_LOG_DROPPED_HEADER)
        .map(|value| value.to_str().expect("ASCII").to_owned());
    assert_eq!(dropped.as_deref(), Some("1"));
    let records: Vec<RequestRecord> = response.json().await.expect("records");
    let agents: Vec<Option<u32>> = records.iter().map(|r| r.agent_index).collect();
    assert_eq!(agents, vec![Some(1), Some(2)]);
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("gateway_request_log_dropped_total 1"),
        "{metrics}"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_tokens_and_durations() {
    let gateway = TestGateway::start().await;
    let answer: ChatResponse = gateway.chat("count me").await.json().await.expect("answer");
    gateway.put_faults_ok(json!({"rate_503": 1.0})).await;
    assert_eq!(gateway.chat("refused").await.status(), 503);

    let metrics = gateway.metrics().await;
    for expected in [
        "# TYPE gateway_requests counter".to_owned(),
        r#"gateway_requests_total{status="200"} 1"#.to_owned(),
        r#"gateway_requests_total{status="503"} 1"#.to_owned(),
        "gateway_requests_in_flight 0".to_owned(),
        format!("gateway_tokens_total {}", answer.usage.total_tokens),
        "# TYPE gateway_request_duration_seconds histogram".to_owned(),
        "gateway_request_duration_seconds_count 2".to_owned(),
    ] {
        assert!(
            metrics.contains(&expected),
            "missing {expected:?} in\n{metrics}"
        );
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_models_and_unknown_paths() {
    let gateway = TestGateway::start().await;
    assert_eq!(gateway.get_text("/healthz").await, (200, "ok\n".to_owned()));
    let (status, text) = gateway.get_text("/v1/models").await;
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&text).expect("model list");
    assert_eq!(models["object"], "list");
    assert!(
        models["data"]
            .as_array()
            .is_some_and(|data| data.len() >= 2),
        "{models}"
    );
    let (status, text) = gateway.get_text("/v1/embeddings").await;
    assert_eq!(status, 404, "{text}");
    let error: Value = serde_json::from_str(&text).expect("OpenAI error body");
    assert_eq!(error["error"]["code"], "not_found");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_request_in_flight_finish() {
    let gateway = TestGateway::start().await;
    gateway
        .put_faults_ok(json!({"latency": {"kind": "fixed", "ms": 500}}))
        .await;
    let request = gateway
        .client
        .post(gateway.url("/v1/chat/completions"))
        .json(&chat_body("m", &["slow"]));
    let in_flight = tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
    let state = std::sync::Arc::clone(&gateway.state);
    wait_for(
        Duration::from_secs(5),
        "the slow request to be in flight",
        || {
            let state = &state;
            async move {
                match state.engine.in_flight() {
                    1 => Ok(()),
                    other => Err(format!("{other} in flight")),
                }
            }
        },
    )
    .await;
    gateway.shutdown().await;
    let status = within(Duration::from_secs(5), "the slow request", in_flight)
        .await
        .expect("request task")
        .expect("the in-flight request was answered, not cut off");
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_the_requests_a_hang_holds() {
    let gateway = TestGateway::start().await;
    gateway
        .put_faults_ok(json!({"hangs": [{"task_id": "hung", "after_answers": 0}]}))
        .await;
    let request = gateway
        .client
        .post(gateway.url("/v1/chat/completions"))
        .header(TASK_ID_HEADER, "hung")
        .json(&chat_body("m", &["held"]));
    let held_request =
        tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
    wait_for(Duration::from_secs(5), "the request to be held", || async {
        let held = held(&gateway).await;
        if held.contains_key("hung") {
            Ok(())
        } else {
            Err(held)
        }
    })
    .await;
    // `shutdown` itself fails the test if the server does not stop within 10 s.
    gateway.shutdown().await;
    let status = within(Duration::from_secs(5), "the held request", held_request)
        .await
        .expect("request task")
        .expect("the held request was answered, not cut off");
    assert_eq!(status, 200);
}
