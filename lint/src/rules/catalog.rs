//! Every rule's metadata, in one table: `--explain`, docs/lint-rules.md and the SARIF rule list
//! are all generated from it, so they cannot drift apart.

use crate::finding::Severity;

/// A lint rule's stable identity and documentation.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// Stable ID (`AF011`); never reused for a different check.
    pub id: &'static str,
    /// Short kebab-case name, for people who prefer words to numbers.
    pub name: &'static str,
    pub severity: Severity,
    /// One line: what is wrong.
    pub title: &'static str,
    /// Why it matters, with the mechanism.
    pub rationale: &'static str,
    /// What to change.
    pub fix: &'static str,
    /// Where the fact comes from: a URL, or the DESIGN.md fact it encodes.
    pub reference: &'static str,
    /// Input problems (the object could not be read). They make the run exit 2.
    pub input_error: bool,
}

macro_rules! rule {
    ($const:ident, $id:literal, $name:literal, $sev:ident, $title:literal, $rationale:literal, $fix:literal, $reference:literal $(, $input:literal)?) => {
        pub static $const: Rule = Rule {
            id: $id,
            name: $name,
            severity: Severity::$sev,
            title: $title,
            rationale: $rationale,
            fix: $fix,
            reference: $reference,
            input_error: false $(|| $input)?,
        };
    };
}

// ---- Input: the manifests cannot be read as Kubernetes objects (exit code 2). ----

rule!(
    YAML_SYNTAX,
    "AF001",
    "yaml-syntax",
    Error,
    "Malformed YAML",
    "The file is not valid YAML (tabs in indentation, a key at the wrong indentation, an unclosed quote or bracket, a duplicate key, an alias to an unknown anchor, or bytes that are not UTF-8). kubectl refuses the whole file, so nothing in it is applied.",
    "Fix the YAML at the reported position. Indent with spaces only, keep sibling keys at the same column, and give every key once per mapping.",
    "https://yaml.org/spec/1.2.2/",
    true
);

rule!(
    UNKNOWN_FIELD,
    "AF002",
    "unknown-field",
    Error,
    "Unknown field",
    "The field is not part of the object's schema, usually a typo (`completionMod`) or a field at the wrong depth. kubectl's strict field validation rejects the object; with validation off the field is silently dropped and the setting you meant never takes effect.",
    "Correct the spelling or move the field to where the schema defines it (`kubectl explain <kind>.<path>` lists the fields).",
    "https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation",
    true
);

rule!(
    INVALID_VALUE,
    "AF003",
    "invalid-value",
    Error,
    "Field has the wrong type or a required field is missing",
    "The value cannot be decoded into the field's type (a string where an integer is expected, a mapping where a list is expected), or a field the API server requires is absent. The API server rejects the object.",
    "Use the type the schema names in the message: unquote numbers (`backoffLimit: 3`), quote strings that look like numbers or booleans (`prometheus.io/port: \"8080\"`), and add required fields.",
    "https://kubernetes.io/docs/reference/kubernetes-api/",
    true
);

rule!(
    UNKNOWN_KIND,
    "AF004",
    "unknown-kind",
    Error,
    "Missing or unknown apiVersion/kind",
    "Every document must name an apiVersion and kind that the cluster serves. A typo in `kind`, a removed API version (policy/v1beta1) or a missing apiVersion makes kubectl reject the document.",
    "Set `apiVersion` and `kind` to a served pair, e.g. `batch/v1` `Job`, `policy/v1` `PodDisruptionBudget`, `keda.sh/v1alpha1` `ScaledJob`.",
    "https://kubernetes.io/docs/reference/using-api/deprecation-guide/",
    true
);

// ---- General. ----

rule!(
    DUPLICATE_OBJECT,
    "AF005",
    "duplicate-object",
    Error,
    "The same object is defined twice",
    "Two documents with the same apiVersion group, kind, namespace and name: the second apply overwrites the first, so one of the two definitions silently never takes effect.",
    "Remove one definition or rename one of the objects.",
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names/"
);

rule!(
    MISSING_NAMESPACE,
    "AF006",
    "missing-namespace",
    Info,
    "Namespaced object without metadata.namespace in an input that uses namespaces",
    "The object lands in whatever namespace the kubectl context points at (usually `default`), while the other objects name theirs. Selectors of PDBs and NetworkPolicies, PVC claims and Secret references only work within one namespace, so a namespace-less object is silently out of their reach. agentfleet lint places it in `--namespace` (default `default`).",
    "Set metadata.namespace explicitly, or pass the intended namespace with --namespace when linting.",
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/"
);

rule!(
    UNKNOWN_SUPPRESSION,
    "AF007",
    "unknown-suppression",
    Warning,
    "lint-ignore annotation names an unknown rule",
    "`agentfleet.dev/lint-ignore` lists rule IDs to suppress for this object. An ID that does not exist suppresses nothing, usually because of a typo, so the finding it was meant to silence still fires (or a future rule is silenced by accident).",
    "List existing rule IDs separated by commas (`agentfleet lint --explain AF011` shows one).",
    "docs/lint-rules.md"
);

rule!(
    UNCHECKED_KIND,
    "AF008",
    "unchecked-kind",
    Info,
    "Object of a kind agentfleet lint does not model",
    "Only its metadata was read; its spec is neither validated nor checked by the rules. Custom resources of other operators land here.",
    "Nothing to fix; suppress with `agentfleet.dev/lint-ignore: AF008` if the object is expected.",
    "docs/lint-rules.md"
);

// ---- Disruption. ----

rule!(
    PDB_SELECTS_NOTHING,
    "AF010",
    "pdb-selects-nothing",
    Warning,
    "PodDisruptionBudget selects no pod template in the input",
    "A PDB protects only pods whose labels match its selector in its own namespace. Pods get the labels of their pod template (`spec.template.metadata.labels`), not those of the Job or Deployment that owns them, so a selector written against the workload's own labels protects nothing.",
    "Put the selected labels on the pod template (`spec.template.metadata.labels`, or `spec.jobTargetRef.template.metadata.labels` for a ScaledJob) in the PDB's namespace, or fix the selector.",
    "https://kubernetes.io/docs/tasks/run-application/configure-pdb/#specifying-a-poddisruptionbudget"
);

rule!(
    PDB_BLOCKS_JOB_EVICTIONS,
    "AF011",
    "pdb-blocks-job-evictions",
    Error,
    "PodDisruptionBudget form that blocks every eviction of Job pods",
    "With `maxUnavailable` or a percentage `minAvailable`, the disruption controller needs the pods' controller to have a scale subresource to know the expected pod count. Jobs (and so KEDA ScaledJob pods) have none: the controller sets disruptionsAllowed=0 and every eviction returns 429, so node drains hang until they time out and the agents are killed anyway.",
    "Use an integer `minAvailable` (for example `minAvailable: 1`) below the number of agent pods you run, or no PDB: agents must survive eviction by checkpointing, not by blocking it.",
    "DESIGN.md (facts): a PDB with maxUnavailable or a percentage minAvailable cannot work for Job pods; https://kubernetes.io/docs/tasks/run-application/configure-pdb/#arbitrary-controllers-and-selectors"
);

rule!(
    PDB_MIN_AVAILABLE_UNREACHABLE,
    "AF012",
    "pdb-min-available-unreachable",
    Warning,
    "PodDisruptionBudget minAvailable is not below the pods the workload runs",
    "disruptionsAllowed = healthy pods - minAvailable. When minAvailable is at least the number of pods the selected workload runs (Job parallelism, Deployment replicas), it is never positive and every voluntary eviction is refused.",
    "Set minAvailable below the workload's pod count, or remove the PDB.",
    "https://kubernetes.io/docs/concepts/workloads/pods/disruptions/#pod-disruption-budgets"
);

// ---- Jobs. ----

rule!(
    SCALEDJOB_RESTART_POLICY_DEFAULT,
    "AF020",
    "scaledjob-restart-policy-default",
    Warning,
    "ScaledJob leaves restartPolicy to KEDA's default (OnFailure)",
    "KEDA fills `restartPolicy: OnFailure` into the Job template when it is empty. With OnFailure an OOM-killed agent restarts in place and counts toward backoffLimit, and podFailurePolicy cannot be used at all.",
    "Set `restartPolicy: Never` in spec.jobTargetRef.template.spec and add a podFailurePolicy with a DisruptionTarget -> Ignore rule.",
    "DESIGN.md (facts): KEDA fills restartPolicy: OnFailure when the template leaves it empty"
);

rule!(
    JOB_RESTART_POLICY_INVALID,
    "AF021",
    "job-restart-policy-invalid",
    Error,
    "Job pod template restartPolicy is missing or Always",
    "A Job's pod template must say `Never` or `OnFailure`; the pod default `Always` is rejected by the API server (`spec.template.spec.restartPolicy: Unsupported value`).",
    "Set `restartPolicy: Never` (and a podFailurePolicy) in the Job's pod template.",
    "https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-template"
);

rule!(
    POD_FAILURE_POLICY_NEEDS_NEVER,
    "AF022",
    "pod-failure-policy-needs-never",
    Error,
    "podFailurePolicy or backoffLimitPerIndex with restartPolicy other than Never",
    "Both features act on pod failures, which only exist when the kubelet does not restart containers in place; the API server rejects a Job that combines them with restartPolicy OnFailure (KEDA's default for ScaledJob).",
    "Set `restartPolicy: Never` in the pod template.",
    "DESIGN.md (facts): podFailurePolicy (GA 1.31) and backoffLimitPerIndex (GA 1.33) require restartPolicy: Never; https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy"
);

rule!(
    DISRUPTION_BURNS_BACKOFF,
    "AF023",
    "disruption-burns-backoff",
    Warning,
    "Job has no podFailurePolicy rule ignoring DisruptionTarget",
    "An evicted or preempted pod counts as a failed pod: without a `DisruptionTarget -> Ignore` rule every node drain spends backoffLimit, and a Job that is drained often enough fails although its agents never failed.",
    "Use `restartPolicy: Never` and add `podFailurePolicy.rules: [{action: Ignore, onPodConditions: [{type: DisruptionTarget}]}]`.",
    "DESIGN.md (facts): a DisruptionTarget -> Ignore rule keeps evictions from burning backoffLimit"
);

rule!(
    ONFAILURE_OOM_RESTARTS,
    "AF024",
    "onfailure-oom-restarts",
    Warning,
    "restartPolicy OnFailure: OOM kills restart in place and count toward backoffLimit",
    "Agents' memory grows with their context. With OnFailure the kubelet restarts an OOM-killed container in the same pod, on the same node, with the same limit, and each restart counts toward backoffLimit: a few large tasks fail the whole Job. OOM kills show as reason OOMKilled, exit code 137, and never set DisruptionTarget.",
    "Use `restartPolicy: Never` so an OOM becomes a pod failure that podFailurePolicy can act on (for example FailIndex or Count on exit code 137), and size the memory limit from the agent's measured peak.",
    "DESIGN.md (facts): with OnFailure, an OOM restart in place counts toward backoffLimit"
);

rule!(
    JOB_NO_TTL,
    "AF025",
    "job-no-ttl",
    Warning,
    "Job without ttlSecondsAfterFinished",
    "Finished Jobs and their pods stay in the API server forever; a fleet that runs thousands of Jobs slows every list and watch of the namespace.",
    "Set `spec.ttlSecondsAfterFinished` (for example 3600).",
    "https://kubernetes.io/docs/concepts/workloads/controllers/ttlafterfinished/"
);

rule!(
    GRACE_SHORTER_THAN_CHECKPOINT,
    "AF026",
    "grace-shorter-than-checkpoint",
    Error,
    "terminationGracePeriodSeconds shorter than the declared checkpoint time",
    "On eviction the agent gets SIGTERM and, after terminationGracePeriodSeconds (30 when unset), SIGKILL. The pod template declares in `agentfleet.dev/checkpoint-seconds` how long the agent needs to checkpoint; a shorter grace period kills it mid-checkpoint and the step is lost.",
    "Raise `terminationGracePeriodSeconds` to at least the checkpoint time (plus a margin), or make the checkpoint faster and lower the annotation. The annotation must be a whole number of seconds.",
    "DESIGN.md (agent contract, Termination): on SIGTERM the agent checkpoints and exits within the grace period"
);

rule!(
    COMPLETION_INDEX_NOT_INDEXED,
    "AF027",
    "completion-index-not-indexed",
    Error,
    "Pod reads the completion index but the Job is not Indexed",
    "The `batch.kubernetes.io/job-completion-index` annotation and JOB_COMPLETION_INDEX exist only for `completionMode: Indexed`. Otherwise the env var is empty and every agent gets the same identity (and the same checkpoint file).",
    "Set `completionMode: Indexed` on the Job (spec.jobTargetRef for a ScaledJob), or derive the identity from the pod name.",
    "https://kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode"
);

rule!(
    SCALEDJOB_CONDITION_WITHOUT_STATUS,
    "AF028",
    "scaledjob-condition-without-status",
    Error,
    "ScaledJob podFailurePolicy condition pattern without status",
    "The Job API defaults `onPodConditions[].status` to `True`, so a Job may leave it out; KEDA's ScaledJob CRD copies the Job schema with `status` required and a CRD applies no Job defaulting, so the API server rejects the ScaledJob (422, `status: Required value`) and KEDA never sees it.",
    "Write `status: \"True\"` next to `type:` in every onPodConditions entry of spec.jobTargetRef.podFailurePolicy.",
    "KEDA config/crd/bases/keda.sh_scaledjobs.yaml (onPodConditions items: required [status, type]); https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy"
);

// ---- KEDA. ----

rule!(
    SCALEDJOB_DEFAULT_ROLLOUT,
    "AF030",
    "scaledjob-default-rollout",
    Warning,
    "ScaledJob uses the default rollout strategy",
    "With the default `rollout.strategy`, KEDA deletes the running Jobs (and so the working agents) whenever the ScaledJob spec changes, e.g. on every image bump.",
    "Set `spec.rollout.strategy: gradual` so running Jobs finish and only new Jobs use the new spec.",
    "DESIGN.md (facts): KEDA's default rollout.strategy deletes running Jobs when the ScaledJob spec changes; gradual keeps them"
);

rule!(
    SCALEDJOB_MAX_REPLICAS_DEFAULT,
    "AF031",
    "scaledjob-max-replicas-default",
    Warning,
    "ScaledJob maxReplicaCount left at its default (100)",
    "maxReplicaCount is the fleet's ceiling: maxScale = ceil(min(queueLength/value, maxReplicaCount)). Left at 100, a queue spike starts 100 agents whether or not the LLM gateway, quotas or nodes can serve them.",
    "Set `spec.maxReplicaCount` from the downstream capacity (gateway concurrency, quota, node count).",
    "DESIGN.md (facts): KEDA ScaledJob maxScale = ceil(min(queueLength/value, maxReplicaCount))"
);

rule!(
    AMQP_QUEUE_LENGTH_NOT_ACCURATE,
    "AF032",
    "amqp-queue-length-not-accurate",
    Warning,
    "RabbitMQ trigger over AMQP without the accurate scaling strategy",
    "Over AMQP the RabbitMQ scaler counts ready messages only; messages the running agents hold unacked are excluded. The default strategy subtracts all running Jobs from that count, so it under-scales; KEDA recommends `accurate` when the metric excludes in-flight messages.",
    "Set `spec.scalingStrategy.strategy: accurate`, or use the HTTP management protocol, which counts ready + unacked.",
    "DESIGN.md (facts): RabbitMQ trigger over AMQP counts ready messages only; KEDA's docs recommend accurate; https://keda.sh/docs/latest/reference/scaledjob-spec/#scaling-strategy"
);

rule!(
    TRIGGER_INLINE_CREDENTIALS,
    "AF033",
    "trigger-inline-credentials",
    Error,
    "Credentials inline in trigger metadata",
    "Trigger metadata is stored in plain text in the ScaledJob, readable by anyone who can read the object and kept in every manifest copy and Git history. A host URL with `user:password@` or a password field leaks the broker's credentials.",
    "Move the value into a Secret and reference it from a TriggerAuthentication (`secretTargetRef` with `parameter: host`), then set `authenticationRef` on the trigger.",
    "https://keda.sh/docs/latest/concepts/authentication/"
);

rule!(
    TRIGGER_AUTH_NOT_IN_INPUT,
    "AF034",
    "trigger-auth-not-in-input",
    Info,
    "authenticationRef names a TriggerAuthentication that is not in the input",
    "KEDA cannot connect to the queue until the referenced TriggerAuthentication exists in the ScaledJob's namespace (or the ClusterTriggerAuthentication exists), and reports an authentication error on the ScaledJob.",
    "Apply the TriggerAuthentication together with the ScaledJob, or check the name and kind of the reference.",
    "https://keda.sh/docs/latest/concepts/authentication/#re-use-credentials-and-delegate-auth-with-triggerauthentication"
);

rule!(
    RABBITMQ_TRIGGER_INCOMPLETE,
    "AF035",
    "rabbitmq-trigger-incomplete",
    Error,
    "RabbitMQ trigger cannot work as written",
    "The RabbitMQ scaler needs a queue name, a connection string (metadata `host`, `hostFromEnv`, or a TriggerAuthentication parameter `host`), a known mode and a positive numeric target value; without them KEDA never activates the ScaledJob.",
    "Set `queueName`, `mode: QueueLength`, a quoted numeric `value` and an `authenticationRef` whose TriggerAuthentication provides `host`.",
    "https://keda.sh/docs/latest/scalers/rabbitmq-queue/"
);

// ---- Network. ----

rule!(
    NETPOL_SELECTS_NOTHING,
    "AF040",
    "netpol-selects-nothing",
    Warning,
    "NetworkPolicy podSelector matches no pod template in the input",
    "A NetworkPolicy isolates only pods in its namespace whose labels match its podSelector. Pods get the labels of their pod template, not of the Job or Deployment, so the intended pods stay unisolated.",
    "Put the selected labels on the pod template in the policy's namespace, or fix the podSelector.",
    "https://kubernetes.io/docs/concepts/services-networking/network-policies/#networkpolicy-resource"
);

rule!(
    DNS_UDP_ONLY,
    "AF041",
    "dns-udp-only",
    Warning,
    "DNS allowed on UDP only",
    "DNS falls back to TCP port 53 for answers that do not fit a UDP datagram (many records, DNSSEC); with TCP blocked those lookups time out and resolution fails intermittently.",
    "Allow port 53 on both UDP and TCP to kube-dns.",
    "DESIGN.md (facts): the article's NetworkPolicy allows DNS on UDP only (TCP 53 is needed for large answers)"
);

rule!(
    NAMESPACE_LABEL_UNSET,
    "AF042",
    "namespace-label-unset",
    Error,
    "namespaceSelector on a label no namespace carries",
    "Namespaces carry `kubernetes.io/metadata.name` automatically; other labels such as `name` exist only if someone adds them. A selector on an unset label matches no namespace, so the rule allows nothing and the pods cannot reach the queue or gateway.",
    "Select namespaces with `kubernetes.io/metadata.name: <namespace>`, or include the Namespace objects that set the label in the input.",
    "DESIGN.md (facts): namespaces carry kubernetes.io/metadata.name automatically, name only if someone adds it"
);

rule!(
    EGRESS_WITHOUT_DNS,
    "AF043",
    "egress-without-dns",
    Warning,
    "Egress-isolated pods cannot reach DNS",
    "Once a NetworkPolicy with Egress selects a pod, everything not allowed is denied, including DNS: service names stop resolving and the agent cannot find the queue or gateway.",
    "Add an egress rule to kube-dns: `to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]` on port 53 UDP and TCP.",
    "https://kubernetes.io/docs/concepts/services-networking/network-policies/#default-policies"
);

rule!(
    AGENT_EGRESS_TOO_WIDE,
    "AF044",
    "agent-egress-too-wide",
    Warning,
    "Agent pods can reach more than the queue, the gateway and DNS",
    "An agent needs only the queue, the LLM gateway and DNS. Egress to the internet, the API server or other namespaces is the blast radius of a compromised or prompt-injected agent (data exfiltration, lateral movement).",
    "Restrict the agents' egress rules to the queue and gateway pods (namespaceSelector + podSelector) and kube-dns.",
    "DESIGN.md (agent contract, Isolation): needs no egress besides the queue, the gateway and DNS"
);

rule!(
    DNS_EGRESS_ANY_DESTINATION,
    "AF045",
    "dns-egress-any-destination",
    Info,
    "Port 53 is open to every destination",
    "A DNS rule with ports but no `to` allows port 53 to any address, including resolvers outside the cluster: DNS tunnelling then bypasses the isolation.",
    "Add `to:` with kube-dns' namespace and pod selectors to the DNS rule.",
    "https://kubernetes.io/docs/concepts/services-networking/network-policies/#behavior-of-to-and-from-selectors"
);

rule!(
    AGENT_NOT_ISOLATED,
    "AF046",
    "agent-not-isolated",
    Warning,
    "Agent pods are not selected by any NetworkPolicy with Egress",
    "Pods no policy selects for egress may connect anywhere; the isolation the fleet relies on does not exist for them.",
    "Label the pod template so the fleet's NetworkPolicy selects it, or add a policy for these pods.",
    "DESIGN.md (agent contract, Isolation)"
);

rule!(
    SCRAPE_BLOCKED_BY_NETPOL,
    "AF047",
    "scrape-blocked-by-netpol",
    Warning,
    "Prometheus cannot reach the pods' metrics port",
    "The pod template asks to be scraped, but the NetworkPolicies selecting it deny ingress from Prometheus on the metrics port: the targets show as down and the fleet's metrics are missing.",
    "Add an ingress rule from Prometheus' namespace and pods on the metrics port.",
    "https://kubernetes.io/docs/concepts/services-networking/network-policies/"
);

// ---- Resources. ----

rule!(
    MISSING_RESOURCES,
    "AF050",
    "missing-resources",
    Warning,
    "Container without cpu/memory requests or memory limit",
    "Without requests the scheduler packs agents onto nodes that cannot hold them; without a memory limit one agent's context growth takes the node's memory and the kernel kills neighbours. No LimitRange in the namespace fills the gap.",
    "Set resources.requests.cpu, resources.requests.memory and resources.limits.memory (or a LimitRange default for the namespace).",
    "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"
);

rule!(
    LIMIT_RANGE_VIOLATION,
    "AF051",
    "limit-range-violation",
    Error,
    "Container resources outside the namespace's LimitRange min/max",
    "The LimitRange admission plugin rejects pods outside min/max: the Job or ScaledJob exists, but its pods are never created (FailedCreate events), and the queue grows.",
    "Bring the request/limit inside the LimitRange bounds, or change the LimitRange.",
    "https://kubernetes.io/docs/concepts/policy/limit-range/"
);

rule!(
    LIMIT_REQUEST_RATIO,
    "AF052",
    "limit-request-ratio",
    Error,
    "Limit/request ratio above the LimitRange's maxLimitRequestRatio",
    "The LimitRange admission plugin rejects pods whose limit divided by request exceeds maxLimitRequestRatio; no pod of the workload is created.",
    "Raise the request or lower the limit so limit/request stays within the ratio.",
    "https://kubernetes.io/docs/concepts/policy/limit-range/"
);

rule!(
    REQUEST_EXCEEDS_LIMIT,
    "AF053",
    "request-exceeds-limit",
    Error,
    "Resource request greater than its limit",
    "The API server rejects a container whose request exceeds its limit (including a request above a LimitRange default limit that fills a missing limit).",
    "Make the request at most the limit.",
    "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#requests-and-limits"
);

// ---- Security. ----

rule!(
    RUN_AS_ROOT,
    "AF060",
    "run-as-root",
    Warning,
    "Container may run as root",
    "Without `runAsNonRoot: true` (or a non-zero runAsUser) an image whose user is root runs as root; a compromised agent then has root in its container and a shorter way out of it.",
    "Set `securityContext.runAsNonRoot: true` (pod or container) and a non-zero runAsUser.",
    "https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted"
);

rule!(
    WRITABLE_ROOT_FS,
    "AF061",
    "writable-root-fs",
    Warning,
    "Container root filesystem is writable",
    "A writable root filesystem lets a compromised agent modify its own binaries and persist tooling; agents only need to write their checkpoint volume and a tmp dir.",
    "Set `securityContext.readOnlyRootFilesystem: true` and mount an emptyDir where the agent writes temporary files.",
    "https://kubernetes.io/docs/tasks/configure-pod-container/security-context/"
);

rule!(
    PRIVILEGE_ESCALATION,
    "AF062",
    "privilege-escalation",
    Warning,
    "allowPrivilegeEscalation is not false",
    "setuid binaries in the image can raise privileges unless no_new_privs is set; the restricted Pod Security Standard requires it.",
    "Set `securityContext.allowPrivilegeEscalation: false` on every container.",
    "https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted"
);

rule!(
    CAPABILITIES_NOT_DROPPED,
    "AF063",
    "capabilities-not-dropped",
    Warning,
    "Container does not drop all capabilities",
    "The runtime's default capability set (NET_RAW, CHOWN, SETUID, ...) is more than an agent needs; NET_RAW alone allows spoofing on the pod network.",
    "Set `securityContext.capabilities.drop: [ALL]`.",
    "https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted"
);

rule!(
    NO_SECCOMP,
    "AF064",
    "no-seccomp",
    Warning,
    "No seccomp profile",
    "Without a seccomp profile the container can make every syscall the kernel offers, including the rarely used ones most container escapes rely on.",
    "Set `securityContext.seccompProfile.type: RuntimeDefault` on the pod (or each container).",
    "https://kubernetes.io/docs/tutorials/security/seccomp/"
);

rule!(
    SA_TOKEN_AUTOMOUNT,
    "AF065",
    "sa-token-automount",
    Warning,
    "Service account token mounted automatically",
    "Agents do not call the Kubernetes API, but an automounted token lets a compromised agent do whatever its service account may.",
    "Set `automountServiceAccountToken: false` on the pod spec (or on its ServiceAccount).",
    "https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#opt-out-of-api-credential-automounting"
);

rule!(
    PRIVILEGED,
    "AF066",
    "privileged",
    Error,
    "Privileged container or host namespaces",
    "A privileged container or one sharing the host's network, PID or IPC namespace is root on the node for practical purposes.",
    "Remove `privileged: true`, `hostNetwork`, `hostPID` and `hostIPC`.",
    "https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline"
);

rule!(
    IMAGE_TAG,
    "AF067",
    "image-tag",
    Warning,
    "Image uses the latest tag or no tag",
    "`latest` (explicit or implied) moves: two pods of one Job can run different code, a rollback cannot name the old version, and imagePullPolicy defaults to Always.",
    "Pin an explicit version tag or a digest (`registry/agent:1.4.2` or `@sha256:...`).",
    "https://kubernetes.io/docs/concepts/containers/images/#image-names"
);

// ---- Secrets and references. ----

rule!(
    SECRET_IN_ENV,
    "AF070",
    "secret-in-env",
    Error,
    "Secret in a plain env value",
    "Env values are stored in plain text in the workload object, shown by `kubectl describe` and kept in Git. A password, token, key or a URL with `user:password@` in `value:` leaks it.",
    "Store it in a Secret and use `valueFrom.secretKeyRef`.",
    "https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-environment-variables"
);

rule!(
    SECRET_NOT_IN_INPUT,
    "AF071",
    "secret-not-in-input",
    Info,
    "Referenced Secret is not in the input",
    "Pods referencing a missing Secret stay in CreateContainerConfigError, and KEDA cannot authenticate; the Secret may well be created separately (it should not be in Git), so this is only a reminder.",
    "Create the Secret in the same namespace before the workload, or mark the reference `optional: true`.",
    "https://kubernetes.io/docs/concepts/configuration/secret/"
);

rule!(
    PVC_NOT_IN_INPUT,
    "AF072",
    "pvc-not-in-input",
    Info,
    "Referenced PersistentVolumeClaim is not in the input namespace",
    "A pod whose claim does not exist in its namespace stays Pending. Checkpoints only survive pod death if the claim exists where the pods run.",
    "Apply the PersistentVolumeClaim in the workload's namespace.",
    "https://kubernetes.io/docs/concepts/storage/persistent-volumes/#claims-as-volumes"
);

// ---- Observability. ----

rule!(
    SCRAPE_ANNOTATIONS_WRONG_OBJECT,
    "AF080",
    "scrape-annotations-wrong-object",
    Warning,
    "prometheus.io annotations on the workload instead of its pod template",
    "Prometheus' pod discovery reads the annotations of pods. Pods get the annotations of the pod template, not of the Job or Deployment, so these annotations make nothing scrape-able.",
    "Move the prometheus.io/* annotations to spec.template.metadata.annotations.",
    "DESIGN.md (facts): Prometheus' pod-annotation convention needs kubernetes_sd_configs with relabeling of pod annotations"
);

rule!(
    SCRAPE_PORT_UNDECLARED,
    "AF081",
    "scrape-port-undeclared",
    Warning,
    "prometheus.io/port names a port the containers do not declare",
    "The scrape targets the annotated port; if no container listens there (or the annotation is not a number) the target is down.",
    "Make prometheus.io/port equal to a declared containerPort (quoted, e.g. \"8080\").",
    "https://prometheus.io/docs/prometheus/latest/configuration/configuration/#kubernetes_sd_config"
);

// ---- Storage. ----

rule!(
    RWX_STORAGE_CLASS,
    "AF090",
    "rwx-storage-class",
    Warning,
    "ReadWriteMany claim with an absent or unknown storage class",
    "Most default storage classes (kind's local-path, gp2/gp3, pd-standard) cannot provision ReadWriteMany; the claim stays Pending and every agent pod with it. A named class that is not in the input may not exist on the target cluster.",
    "Name a storage class that supports RWX (EFS, NFS, CephFS) and include it in the input, or use ReadWriteOnce with per-agent claims.",
    "https://kubernetes.io/docs/concepts/storage/persistent-volumes/#access-modes"
);

/// Every rule, in ID order.
pub static RULES: &[&Rule] = &[
    &YAML_SYNTAX,
    &UNKNOWN_FIELD,
    &INVALID_VALUE,
    &UNKNOWN_KIND,
    &DUPLICATE_OBJECT,
    &MISSING_NAMESPACE,
    &UNKNOWN_SUPPRESSION,
    &UNCHECKED_KIND,
    &PDB_SELECTS_NOTHING,
    &PDB_BLOCKS_JOB_EVICTIONS,
    &PDB_MIN_AVAILABLE_UNREACHABLE,
    &SCALEDJOB_RESTART_POLICY_DEFAULT,
    &JOB_RESTART_POLICY_INVALID,
    &POD_FAILURE_POLICY_NEEDS_NEVER,
    &DISRUPTION_BURNS_BACKOFF,
    &ONFAILURE_OOM_RESTARTS,
    &JOB_NO_TTL,
    &GRACE_SHORTER_THAN_CHECKPOINT,
    &COMPLETION_INDEX_NOT_INDEXED,
    &SCALEDJOB_CONDITION_WITHOUT_STATUS,
    &SCALEDJOB_DEFAULT_ROLLOUT,
    &SCALEDJOB_MAX_REPLICAS_DEFAULT,
    &AMQP_QUEUE_LENGTH_NOT_ACCURATE,
    &TRIGGER_INLINE_CREDENTIALS,
    &TRIGGER_AUTH_NOT_IN_INPUT,
    &RABBITMQ_TRIGGER_INCOMPLETE,
    &NETPOL_SELECTS_NOTHING,
    &DNS_UDP_ONLY,
    &NAMESPACE_LABEL_UNSET,
    &EGRESS_WITHOUT_DNS,
    &AGENT_EGRESS_TOO_WIDE,
    &DNS_EGRESS_ANY_DESTINATION,
    &AGENT_NOT_ISOLATED,
    &SCRAPE_BLOCKED_BY_NETPOL,
    &MISSING_RESOURCES,
    &LIMIT_RANGE_VIOLATION,
    &LIMIT_REQUEST_RATIO,
    &REQUEST_EXCEEDS_LIMIT,
    &RUN_AS_ROOT,
    &WRITABLE_ROOT_FS,
    &PRIVILEGE_ESCALATION,
    &CAPABILITIES_NOT_DROPPED,
    &NO_SECCOMP,
    &SA_TOKEN_AUTOMOUNT,
    &PRIVILEGED,
    &IMAGE_TAG,
    &SECRET_IN_ENV,
    &SECRET_NOT_IN_INPUT,
    &PVC_NOT_IN_INPUT,
    &SCRAPE_ANNOTATIONS_WRONG_OBJECT,
    &SCRAPE_PORT_UNDECLARED,
    &RWX_STORAGE_CLASS,
];

/// Looks a rule up by ID (`AF011`, case-insensitive) or name (`pdb-blocks-job-evictions`).
pub fn find(id_or_name: &str) -> Option<&'static Rule> {
    let wanted = id_or_name.trim();
    RULES
        .iter()
        .copied()
        .find(|r| r.id.eq_ignore_ascii_case(wanted) || r.name == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_sorted_and_well_formed() {
        for pair in RULES.windows(2) {
            assert!(
                pair[0].id < pair[1].id,
                "{} must sort before {}",
                pair[0].id,
                pair[1].id
            );
        }
        let mut names: Vec<_> = RULES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RULES.len(), "rule names must be unique");
        for rule in RULES {
            assert!(
                rule.id.len() == 5 && rule.id.starts_with("AF"),
                "{}",
                rule.id
            );
            assert!(
                !rule.rationale.is_empty() && !rule.fix.is_empty() && !rule.reference.is_empty(),
                "{}",
                rule.id
            );
            assert_eq!(
                rule.input_error,
                rule.id <= "AF004",
                "{}: only AF001-AF004 are input errors",
                rule.id
            );
        }
    }

    #[test]
    fn finds_by_id_or_name() {
        assert_eq!(find("af011").map(|r| r.id), Some("AF011"));
        assert_eq!(
            find("pdb-blocks-job-evictions").map(|r| r.id),
            Some("AF011")
        );
        assert!(find("AF999").is_none());
    }
}
