//! [`Ledger`]: every published task id against every result and dead letter.
//!
//! Delivery is at-least-once, so the questions a scenario must answer are: was any task lost
//! (published, never finished, never dead-lettered)? Was any finished more than once, and how
//! often? Did anything come back that nobody published? The ledger answers them from what it
//! was told was published and what came off the result and dead-letter queues.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::queue::{DeadLetterRecord, Outcome, Outcomes, QueueError, ResultRecord};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "timed out after {waited:?} with {} of {published} published tasks unaccounted for \
         (no result, no dead letter): {}; so far: {verdict}",
        missing.len(), preview(missing)
    )]
    Timeout {
        waited: Duration,
        published: usize,
        missing: Vec<String>,
        verdict: Verdict,
    },
    #[error("the result/dead-letter consumers stopped (broker connection lost?) with {} tasks unaccounted for: {}", missing.len(), preview(missing))]
    OutcomesEnded { missing: Vec<String> },
    #[error(transparent)]
    Queue(#[from] QueueError),
}

fn preview(ids: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(", ... ({} more)", ids.len() - SHOWN));
    }
    text
}

/// What happened to the published tasks.
#[derive(Debug, Default)]
pub struct Ledger {
    published: Vec<String>,
    published_set: HashSet<String>,
    results: BTreeMap<String, Vec<ResultRecord>>,
    dead_letters: BTreeMap<String, Vec<DeadLetterRecord>>,
    /// Results and dead letters whose id was never published (or that carry no id).
    unexpected: Vec<Outcome>,
    /// Messages on the result queue that are not results.
    undecodable: Vec<Outcome>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Records that `id` was published (call after the broker confirmed it).
    pub fn published(&mut self, id: &str) {
        if self.published_set.insert(id.to_owned()) {
            self.published.push(id.to_owned());
        }
    }

    /// Records one outcome taken off the queues.
    pub fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Result(record) if self.published_set.contains(&record.result.task_id) => {
                self.results
                    .entry(record.result.task_id.clone())
                    .or_default()
                    .push(record);
            }
            Outcome::DeadLetter(record)
                if record
                    .task_id
                    .as_ref()
                    .is_some_and(|id| self.published_set.contains(id)) =>
            {
                let id = record.task_id.clone().unwrap_or_default();
                self.dead_letters.entry(id).or_default().push(record);
            }
            undecodable @ Outcome::Undecodable { .. } => self.undecodable.push(undecodable),
            unexpected => self.unexpected.push(unexpected),
        }
    }

    /// True when `id` has a result or a dead letter.
    pub fn is_accounted(&self, id: &str) -> bool {
        self.results.contains_key(id) || self.dead_letters.contains_key(id)
    }

    /// Published ids with neither a result nor a dead letter, in publishing order.
    pub fn missing(&self) -> Vec<String> {
        self.published
            .iter()
            .filter(|id| !self.is_accounted(id))
            .cloned()
            .collect()
    }

    pub fn results_for(&self, id: &str) -> &[ResultRecord] {
        self.results.get(id).map_or(&[], Vec::as_slice)
    }

    pub fn dead_letters_for(&self, id: &str) -> &[DeadLetterRecord] {
        self.dead_letters.get(id).map_or(&[], Vec::as_slice)
    }

    /// The one result of `id`, or a message saying how many there were.
    pub fn single_result(&self, id: &str) -> Result<&ResultRecord, String> {
        match self.results_for(id) {
            [one] => Ok(one),
            many => Err(format!(
                "expected exactly one result for `{id}`, got {}: {many:?}",
                many.len()
            )),
        }
    }

    pub fn verdict(&self) -> Verdict {
        let id_of = |o: &Outcome| match o {
            Outcome::Result(r) => format!("result for `{}`", r.result.task_id),
            Outcome::DeadLetter(d) => format!(
                "dead letter for `{}`",
                d.task_id.as_deref().unwrap_or("<no id>")
            ),
            Outcome::Undecodable {
                queue,
                message_id,
                error,
            } => {
                format!(
                    "`{}` on {queue}: {error}",
                    message_id.as_deref().unwrap_or("<no id>")
                )
            }
        };
        Verdict {
            published: self.published.len(),
            completed: self.results.len(),
            dead_lettered: self.dead_letters.len(),
            lost: self.missing(),
            duplicates: self
                .results
                .iter()
                .filter(|(_, r)| r.len() > 1)
                .map(|(id, r)| (id.clone(), r.len()))
                .collect(),
            completed_and_dead_lettered: self
                .results
                .keys()
                .filter(|id| self.dead_letters.contains_key(*id))
                .cloned()
                .collect(),
            unexpected: self.unexpected.iter().map(id_of).collect(),
            undecodable: self.undecodable.iter().map(id_of).collect(),
        }
    }

    /// Consumes outcomes until every published task is accounted for, or fails at `timeout`
    /// naming the missing ids.
    pub async fn wait_accounted(
        &mut self,
        outcomes: &mut Outcomes,
        timeout: Duration,
    ) -> Result<Verdict, LedgerError> {
        let started = Instant::now();
        let deadline = started + timeout;
        while !self.missing().is_empty() {
            match tokio::time::timeout_at(deadline, outcomes.next()).await {
                Ok(Some(outcome)) => self.record(outcome?),
                Ok(None) => {
                    return Err(LedgerError::OutcomesEnded {
                        missing: self.missing(),
                    });
                }
                Err(_elapsed) => {
                    return Err(LedgerError::Timeout {
                        waited: started.elapsed(),
                        published: self.published.len(),
                        missing: self.missing(),
                        verdict: self.verdict(),
                    });
                }
            }
        }
        Ok(self.verdict())
    }

    /// Keeps consuming until no outcome arrives for `quiet`, so that late duplicates are counted
    /// before a verdict is taken. Returns how many outcomes arrived meanwhile.
    pub async fn settle(
        &mut self,
        outcomes: &mut Outcomes,
        quiet: Duration,
    ) -> Result<usize, LedgerError> {
        let mut arrived = 0;
        loop {
            match tokio::time::timeout(quiet, outcomes.next()).await {
                Ok(Some(outcome)) => {
                    self.record(outcome?);
                    arrived += 1;
                }
                Ok(None) | Err(_) => return Ok(arrived),
            }
        }
    }
}

/// The ledger's judgement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub published: usize,
    /// Distinct task ids with at least one result.
    pub completed: usize,
    /// Distinct task ids with at least one dead letter.
    pub dead_lettered: usize,
    /// Published, no result, no dead letter.
    pub lost: Vec<String>,
    /// Task ids with more than one result, and how many.
    pub duplicates: Vec<(String, usize)>,
    /// Task ids that both completed and were dead-lettered.
    pub completed_and_dead_lettered: Vec<String>,
    /// Outcomes for ids that were never published.
    pub unexpected: Vec<String>,
    /// Messages on the result queue that are not results.
    pub undecodable: Vec<String>,
}

impl Verdict {
    /// No loss, no duplicate, nothing unexpected.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicates.is_empty()
            && self.completed_and_dead_lettered.is_empty()
            && self.unexpected.is_empty()
            && self.undecodable.is_empty()
    }

    /// Total results beyond the first per task.
    pub fn duplicate_results(&self) -> usize {
        self.duplicates.iter().map(|(_, n)| n - 1).sum()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} published, {} completed, {} dead-lettered, {} lost, {} duplicated ({} extra results), \
             {} both completed and dead-lettered, {} unexpected, {} undecodable",
            self.published,
            self.completed,
            self.dead_lettered,
            self.lost.len(),
            self.duplicates.len(),
            self.duplicate_results(),
            self.completed_and_dead_lettered.len(),
            self.unexpected.len(),
            self.undecodable.len(),
        )?;
        if !self.lost.is_empty() {
            write!(f, "; lost: {}", preview(&self.lost))?;
        }
        if !self.duplicates.is_empty() {
            let dups: Vec<String> = self
                .duplicates
                .iter()
                .map(|(id, n)| format!("{id} x{n}"))
                .collect();
            write!(f, "; duplicates: {}", preview(&dups))?;
        }
        if !self.completed_and_dead_lettered.is_empty() {
            write!(
                f,
                "; completed and dead-lettered: {}",
                preview(&self.completed_and_dead_lettered)
            )?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "; unexpected: {}", preview(&self.unexpected))?;
        }
        if !self.undecodable.is_empty() {
            write!(f, "; undecodable: {}", preview(&self.undecodable))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use agentfleet_protocol::{TaskResult, TokenUsage};

    use super::*;
    use crate::queue::DeadLetterCause;

    fn result(id: &str) -> Outcome {
        Outcome::Result(ResultRecord {
            result: TaskResult {
                task_id: id.into(),
                agent_index: 0,
                steps: 1,
                tokens: TokenUsage::default(),
                resumed_from_step: 0,
                attempt: 1,
                output_digest: "d".into(),
                finished_at_ms: 0,
            },
            message_id: Some(id.into()),
            redelivered: false,
        })
    }

    fn dead(id: Option<&str>) -> Outcome {
        Outcome::DeadLetter(DeadLetterRecord {
            task_id: id.map(str::to_owned),
            cause: DeadLetterCause::Broker {
                reason: "delivery_limit".into(),
            },
            body: Vec::new(),
        })
    }

    #[test]
    fn a_clean_run() {
        let mut l = Ledger::new();
        for id in ["a", "b", "c"] {
            l.published(id);
        }
        l.record(result("a"));
        l.record(result("b"));
        l.record(dead(Some("c")));
        let v = l.verdict();
        assert!(v.is_clean(), "{v}");
        assert_eq!((v.published, v.completed, v.dead_lettered), (3, 2, 1));
        assert!(l.single_result("a").is_ok());
    }

    #[test]
    fn loss_duplicates_and_strangers_are_named() {
        let mut l = Ledger::new();
        for id in ["a", "b", "c", "d"] {
            l.published(id);
        }
        l.record(result("a"));
        l.record(result("a"));
        l.record(result("a"));
        l.record(result("d"));
        l.record(dead(Some("d")));
        l.record(result("zzz"));
        l.record(dead(None));
        l.record(Outcome::Undecodable {
            queue: "results".into(),
            message_id: None,
            error: "eof".into(),
        });
        let v = l.verdict();
        assert!(!v.is_clean());
        assert_eq!(v.lost, vec!["b".to_owned(), "c".to_owned()]);
        assert_eq!(v.duplicates, vec![("a".to_owned(), 3)]);
        assert_eq!(v.duplicate_results(), 2);
        assert_eq!(v.completed_and_dead_lettered, vec!["d".to_owned()]);
        assert_eq!(v.unexpected.len(), 2);
        assert_eq!(v.undecodable.len(), 1);
        let text = v.to_string();
        assert!(
            text.contains("2 lost") && text.contains("a x3") && text.contains("zzz"),
            "{text}"
        );
        assert!(l.single_result("a").unwrap_err().contains("got 3"));
    }

    #[test]
    fn publishing_twice_counts_once() {
        let mut l = Ledger::new();
        l.published("a");
        l.published("a");
        assert_eq!(l.verdict().published, 1);
        assert_eq!(l.missing(), vec!["a".to_owned()]);
    }
}
