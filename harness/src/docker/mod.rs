//! A thin, typed layer over the Docker Engine API (bollard): connect, check images, create and
//! drive containers, and wait on them through the events stream rather than by polling.

mod container;
mod engine;
mod error;
mod events;
mod spec;
mod status;

pub use container::{AppliedSecurity, Container};
pub use engine::Engine;
pub use error::DockerError;
pub use events::{ContainerEvent, EventRecorder, container_events};
pub use spec::{ContainerSpec, NetworkAttachment, Restart, VolumeMount};
pub use status::ContainerStatus;

pub(crate) use container::tail;
pub(crate) use spec::endpoint;
