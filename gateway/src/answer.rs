//! Deterministic chat answers: the same (model, messages) always yields the same content and
//! the same token usage, so scenarios can predict token totals and detect duplicated work.

use agentfleet_protocol::TokenUsage;
use agentfleet_protocol::gateway::{ChatChoice, ChatMessage, ChatRequest, ChatResponse};
use sha2::{Digest, Sha256};

/// Models `GET /v1/models` lists. Chat accepts any model name: the simulator's answer depends
/// only on the request, and agents under test may be configured with a real provider's name.
pub const MODELS: [&str; 3] = [
    "agentfleet-sim-small",
    "agentfleet-sim-medium",
    "agentfleet-sim-large",
];

/// Words the simulated content is built from; 32 so one hash byte picks one word.
const VOCABULARY: [&str; 32] = [
    "agent",
    "queue",
    "task",
    "step",
    "result",
    "retry",
    "budget",
    "breaker",
    "gateway",
    "token",
    "model",
    "window",
    "latency",
    "capacity",
    "outage",
    "signal",
    "checkpoint",
    "resume",
    "fleet",
    "index",
    "worker",
    "scale",
    "drain",
    "backoff",
    "jitter",
    "probe",
    "policy",
    "metric",
    "trace",
    "ledger",
    "verdict",
    "answer",
];

/// Why the digest covers lengths as well as bytes: without them `["ab", "c"]` and `["a", "bc"]`
/// would hash alike.
fn request_digest(request: &ChatRequest) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(request.model.as_bytes());
    for message in &request.messages {
        field(message.role.as_bytes());
        field(message.content.as_bytes());
    }
    hasher.finalize().into()
}

/// Token usage of `request`: prompt = ceil(characters of all message contents / 4), at least 1;
/// completion = 8 + (hash % 24).
pub fn usage_for(request: &ChatRequest, hash: u64) -> TokenUsage {
    let chars: u64 = request
        .messages
        .iter()
        .map(|message| message.content.chars().count() as u64)
        .sum();
    let prompt_tokens = chars.div_ceil(4).max(1);
    let completion_tokens = 8 + hash % 24;
    TokenUsage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
    }
}

/// Builds the answer to `request`. `created` (Unix seconds) is the only field that is not a
/// function of the request.
pub fn answer(request: &ChatRequest, created: u64) -> ChatResponse {
    let digest = request_digest(request);
    let hash = u64::from_be_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    );
    let usage = usage_for(request, hash);
    let fingerprint = hex::encode(&digest[..8]);
    // One word per completion token, so the content's size tracks the reported usage.
    let words: Vec<&str> = (0..usage.completion_tokens as usize)
        .map(|i| VOCABULARY[usize::from(digest[(8 + i) % digest.len()]) % VOCABULARY.len()])
        .collect();
    ChatResponse {
        id: format!("chatcmpl-{fingerprint}"),
        object: "chat.completion".to_owned(),
        created,
        model: request.model.clone(),
        choices: vec![ChatChoice {
            index: 0,
            message: ChatMessage {
                role: "assistant".to_owned(),
                content: format!("[sim {fingerprint}] {}", words.join(" ")),
            },
            finish_reason: "stop".to_owned(),
        }],
        usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(model: &str, contents: &[&str]) -> ChatRequest {
        ChatRequest {
            model: model.to_owned(),
            messages: contents
                .iter()
                .map(|content| ChatMessage {
                    role: "user".to_owned(),
                    content: (*content).to_owned(),
                })
                .collect(),
            max_tokens: None,
        }
    }

    #[test]
    fn same_request_same_answer() {
        let first = answer(&request("m", &["hello", "world"]), 1);
        let second = answer(&request("m", &["hello", "world"]), 2);
        assert_eq!(first.choices, second.choices);
        assert_eq!(first.usage, second.usage);
        assert_eq!(first.id, second.id);
    }

    #[test]
    fn model_and_message_boundaries_change_the_answer() {
        let base = answer(&request("m", &["ab", "c"]), 0);
        assert_ne!(base.choices, answer(&request("m", &["a", "bc"]), 0).choices);
        assert_ne!(base.choices, answer(&request("n", &["ab", "c"]), 0).choices);
    }

    #[test]
    fn prompt_tokens_round_characters_up_and_never_drop_below_one() {
        let usage = |contents: &[&str]| usage_for(&request("m", contents), 0).prompt_tokens;
        assert_eq!(usage(&[""]), 1);
        assert_eq!(usage(&["abcd"]), 1);
        assert_eq!(usage(&["abcd", "e"]), 2);
        // Characters, not bytes: four two-byte characters are one token.
        assert_eq!(usage(&["éééé"]), 1);
    }

    #[test]
    fn completion_tokens_follow_the_hash_and_total_adds_up() {
        for hash in [0, 23, 24, u64::MAX] {
            let usage = usage_for(&request("m", &["x"]), hash);
            assert_eq!(usage.completion_tokens, 8 + hash % 24);
            assert_eq!(
                usage.total_tokens,
                usage.prompt_tokens + usage.completion_tokens
            );
        }
        let response = answer(&request("m", &["some prompt"]), 0);
        let words = response.choices[0].message.content.split(' ').count() - 2;
        assert_eq!(words as u64, response.usage.completion_tokens);
    }
}
