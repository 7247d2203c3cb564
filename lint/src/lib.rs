//! Fleet manifests: typed parsing, lint rules and the NetworkPolicy truth table.
