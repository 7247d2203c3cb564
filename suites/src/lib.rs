//! Shared helpers for the scenario tests live in the harness crate; this crate only holds tests.
