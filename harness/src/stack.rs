//! [`Stack`]: the set-up most agent tests start from, in one scope: a broker, a gateway, the
//! shared checkpoint volume, a queue client with the topology declared, and a ledger fed from
//! the result and dead-letter queues.

use std::time::Duration;

use agentfleet_protocol::gateway::FaultProfile;
use agentfleet_protocol::{Task, Topology};

use crate::Scope;
use crate::agents::{AgentLauncher, AgentTemplate};
use crate::checkpoints::{AGENT_UID, CheckpointVolume};
use crate::docker::{DockerError, Engine};
use crate::images::Images;
use crate::ledger::{Ledger, LedgerError, Verdict};
use crate::queue::{Outcomes, QueueClient, QueueError};
use crate::services::ServiceError;
use crate::services::gateway::Gateway;
use crate::services::rabbitmq::{self, RabbitMq};
use crate::sweep::Swept;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Everything a single-broker agent test needs. Dropping it removes all its containers,
/// networks and volumes (see [`Scope`]).
#[derive(Debug)]
pub struct Stack {
    pub images: Images,
    pub topology: Topology,
    pub rabbitmq: RabbitMq,
    pub gateway: Gateway,
    pub queue: QueueClient,
    pub checkpoints: CheckpointVolume,
    pub ledger: Ledger,
    outcomes: Outcomes,
    // Last, so that it is dropped after the clients above.
    pub scope: Scope,
}

impl Stack {
    /// Brings the stack up with images from [`Images::from_env`] and the gateway's faults off.
    pub async fn up(name: &str) -> Result<Stack, StackError> {
        Stack::up_with(name, &FaultProfile::default()).await
    }

    /// Brings the stack up with `faults` as the gateway's initial profile. Fails first, and
    /// clearly, if Docker or an image is missing.
    pub async fn up_with(name: &str, faults: &FaultProfile) -> Result<Stack, StackError> {
        let images = Images::from_env();
        let engine = Engine::connect().await?;
        for image in [
            &images.agent,
            &images.gateway,
            &images.rabbitmq,
            &images.toolbox,
        ] {
            engine.require_image(image).await?;
        }
        let scope = Scope::new(&engine, name).await?;
        // The broker's boot dominates; the gateway and the volume are made meanwhile.
        let (rabbitmq, gateway, checkpoints) = tokio::try_join!(
            async {
                RabbitMq::start(&scope, &images.rabbitmq, rabbitmq::DEFAULT_START_TIMEOUT)
                    .await
                    .map_err(StackError::from)
            },
            async {
                Gateway::start(&scope, &images.gateway, faults)
                    .await
                    .map_err(StackError::from)
            },
            async {
                CheckpointVolume::create(&scope, &images.toolbox, AGENT_UID)
                    .await
                    .map_err(StackError::from)
            },
        )?;
        let topology = Topology::default();
        let queue = rabbitmq.client(topology.clone()).await?;
        let outcomes = queue.outcomes().await?;
        Ok(Stack {
            images,
            topology,
            rabbitmq,
            gateway,
            queue,
            checkpoints,
            ledger: Ledger::new(),
            outcomes,
            scope,
        })
    }

    /// The reference template for this stack's agent image.
    pub fn agent_template(&self) -> AgentTemplate {
        AgentTemplate::new(&self.images.agent)
    }

    pub fn launcher(&self, template: AgentTemplate) -> AgentLauncher {
        AgentLauncher::new(template, self.topology.clone(), &self.checkpoints)
    }

    /// Publishes `task` (confirmed) and enters it in the ledger.
    pub async fn publish(&mut self, task: &Task) -> Result<(), QueueError> {
        self.queue.publish_task(task).await?;
        self.ledger.published(&task.id);
        Ok(())
    }

    /// Publishes an arbitrary body under `message_id` and enters it in the ledger.
    pub async fn publish_raw(&mut self, message_id: &str, body: &[u8]) -> Result<(), QueueError> {
        self.queue.publish_raw(message_id, body).await?;
        self.ledger.published(message_id);
        Ok(())
    }

    /// Waits until every published task has a result or a dead letter.
    pub async fn wait_accounted(&mut self, timeout: Duration) -> Result<Verdict, LedgerError> {
        self.ledger
            .wait_accounted(&mut self.outcomes, timeout)
            .await
    }

    /// Keeps taking outcomes until none arrives for `quiet` (late duplicates), then judges.
    pub async fn settle(&mut self, quiet: Duration) -> Result<Verdict, LedgerError> {
        self.ledger.settle(&mut self.outcomes, quiet).await?;
        Ok(self.ledger.verdict())
    }

    /// Removes everything now (dropping the stack does the same, without reporting).
    pub async fn teardown(self) -> Result<Swept, DockerError> {
        let Stack { queue, scope, .. } = self;
        let _ = queue.close().await;
        scope.teardown().await
    }
}
