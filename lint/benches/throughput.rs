//! Parse + lint throughput: `cargo bench -p agentfleet-lint --bench throughput`.
//!
//! Generates a corpus of 10,000 manifests of varied kinds (Jobs, ScaledJobs, Deployments,
//! NetworkPolicies, PDBs, Services, ConfigMaps, Secrets, PVCs, TriggerAuthentications,
//! LimitRanges) spread over 50 namespaces, one file each, in a temp dir; then reads and lints
//! the whole directory several times and reports manifests/s and MB/s of the best and the
//! median run. `AGENTFLEET_BENCH_MANIFESTS` and `AGENTFLEET_BENCH_RUNS` override the sizes.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use agentfleet_lint::{lint, source};

const NAMESPACES: usize = 50;

fn manifest(i: usize) -> String {
    let ns = format!("team-{}", i % NAMESPACES);
    let name = format!("obj-{i}");
    let app = format!("agent-{}", i % 7);
    let pod_spec = |indent: usize| {
        let pad = " ".repeat(indent);
        let mut s = String::new();
        let _ = write!(
            s,
            "{pad}restartPolicy: Never\n{pad}securityContext:\n{pad}  runAsNonRoot: true\n{pad}  seccompProfile: {{type: RuntimeDefault}}\n\
             {pad}containers:\n{pad}  - name: agent\n{pad}    image: registry.example/agent:1.{}.0\n\
             {pad}    env:\n{pad}      - name: AGENT_INDEX\n{pad}        valueFrom: {{fieldRef: {{fieldPath: \"metadata.annotations['batch.kubernetes.io/job-completion-index']\"}}}}\n\
             {pad}      - name: AGENT_QUEUE_URL\n{pad}        valueFrom: {{secretKeyRef: {{name: secrets-{}, key: url}}}}\n\
             {pad}    resources:\n{pad}      requests: {{cpu: 250m, memory: 1Gi}}\n{pad}      limits: {{memory: 2Gi}}\n\
             {pad}    securityContext: {{readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n",
            i % 10,
            i % NAMESPACES
        );
        s
    };
    match i % 11 {
        0 => format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  completionMode: Indexed\n  completions: 10\n  parallelism: 4\n  ttlSecondsAfterFinished: 600\n  template:\n    metadata:\n      labels: {{app: {app}}}\n    spec:\n{}",
            pod_spec(6)
        ),
        1 => format!(
            "apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  maxReplicaCount: 20\n  rollout: {{strategy: gradual}}\n  scalingStrategy: {{strategy: accurate}}\n  jobTargetRef:\n    template:\n      metadata:\n        labels: {{app: {app}}}\n      spec:\n{}  triggers:\n    - type: rabbitmq\n      metadata: {{protocol: amqp, queueName: tasks, mode: QueueLength, value: \"5\"}}\n      authenticationRef: {{name: auth-{}}}\n",
            pod_spec(8),
            i % NAMESPACES
        ),
        2 => format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata:\n      labels: {{app: {app}}}\n    spec:\n{}",
            pod_spec(6).replace("restartPolicy: Never", "restartPolicy: Always")
        ),
        3 => format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  podSelector: {{matchLabels: {{app: {app}}}}}\n  policyTypes: [Ingress, Egress]\n  egress:\n    - to:\n        - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: message-queue}}}}\n      ports: [{{port: 5672}}]\n    - to:\n        - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: kube-system}}}}\n          podSelector: {{matchLabels: {{k8s-app: kube-dns}}}}\n      ports: [{{port: 53, protocol: UDP}}, {{port: 53, protocol: TCP}}]\n"
        ),
        4 => format!(
            "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  minAvailable: 1\n  selector: {{matchLabels: {{app: {app}}}}}\n"
        ),
        5 => format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  selector: {{app: {app}}}\n  ports:\n    - name: metrics\n      port: 8080\n      targetPort: metrics\n"
        ),
        6 => format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  config.json: '{{\"steps\": {i}, \"model\": \"m\"}}'\n  level: info\n"
        ),
        7 => format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secrets-{}\n  namespace: {ns}\ntype: Opaque\nstringData:\n  url: amqp://u:p@rabbitmq:5672/\n",
            i
        ),
        8 => format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n"
        ),
        9 => format!(
            "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata:\n  name: auth-{}\n  namespace: {ns}\nspec:\n  secretTargetRef:\n    - {{parameter: host, name: secrets-{}, key: url}}\n",
            i,
            i % NAMESPACES
        ),
        _ => format!(
            "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  limits:\n    - type: Container\n      max: {{memory: 8Gi, cpu: \"4\"}}\n"
        ),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; libtest-style filters are not meaningful here.
    let count = env_usize("AGENTFLEET_BENCH_MANIFESTS", 10_000);
    let runs = env_usize("AGENTFLEET_BENCH_RUNS", 5).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut bytes = 0usize;
    for i in 0..count {
        let text = manifest(i);
        bytes += text.len();
        std::fs::write(dir.path().join(format!("m{i:05}.yaml")), text).expect("write manifest");
    }
    let root = dir.path().display().to_string();
    println!(
        "corpus: {count} manifests, {:.2} MB in {root}",
        bytes as f64 / 1e6
    );

    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut parse_times: Vec<Duration> = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let sources = source::load(std::slice::from_ref(&root), &mut std::io::empty())
            .expect("corpus is readable");
        let parse_start = Instant::now();
        let _ = agentfleet_lint::load_fleet(&sources, "default");
        parse_times.push(parse_start.elapsed());
        let start_lint = Instant::now();
        let report = lint(&sources, "default");
        times.push(start_lint.elapsed() + (parse_start - start));
        last = Some(report);
    }
    parse_times.sort();
    let report = last.expect("at least one run");
    assert_eq!(
        report.objects.len(),
        count,
        "every generated manifest parses: {:?}",
        report.findings.iter().find(|f| f.is_input_error())
    );
    assert!(!report.has_input_errors());
    times.sort();
    let show = |label: &str, t: Duration| {
        let secs = t.as_secs_f64();
        println!(
            "{label:>6}: {:>8.1} ms  {:>9.0} manifests/s  {:>6.2} MB/s",
            secs * 1e3,
            count as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    };
    println!(
        "parse+lint, {runs} runs ({} findings per run):",
        report.findings.len()
    );
    show("best", times[0]);
    show("median", times[times.len() / 2]);
    println!(
        "(of which parsing and decoding alone: best {:.1} ms)",
        parse_times[0].as_secs_f64() * 1e3
    );
}
