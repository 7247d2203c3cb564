//! The agentfleet harness library.
