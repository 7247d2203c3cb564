//! The `gateway` binary: configuration errors, start-up log and graceful SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const GATEWAY: &str = env!("CARGO_BIN_EXE_gateway");

/// A `gateway` command with none of the caller's GATEWAY_* variables leaking in.
fn gateway_command() -> Command {
    let mut command = Command::new(GATEWAY);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GATEWAY_") {
            command.env_remove(name);
        }
    }
    command.args(["--listen", "127.0.0.1:0"]);
    command
}

fn failed_start(command: &mut Command) -> String {
    let output = command.output().expect("run gateway");
    assert!(
        !output.status.success(),
        "gateway started despite bad configuration: {output:?}"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_inline_profile_names_the_variable_and_the_serde_error() {
    let stderr = failed_start(gateway_command().env("GATEWAY_FAULTS", r#"{"rate_5OO": 0.1}"#));
    assert!(stderr.contains("GATEWAY_FAULTS"), "{stderr}");
    assert!(stderr.contains("unknown field `rate_5OO`"), "{stderr}");
}

#[test]
fn out_of_range_profile_file_names_the_file_and_the_field() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut file, br#"{"rate_429": 3}"#).expect("write profile");
    let stderr = failed_start(gateway_command().env("GATEWAY_FAULTS_FILE", file.path()));
    assert!(
        stderr.contains(&file.path().display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("rate_429"), "{stderr}");
}

#[test]
fn file_and_inline_profile_together_are_refused() {
    let stderr = failed_start(
        gateway_command()
            .env("GATEWAY_FAULTS_FILE", "/dev/null")
            .env("GATEWAY_FAULTS", "{}"),
    );
    assert!(stderr.contains("--faults"), "{stderr}");
}

/// Kills the child on drop so a failing assertion does not leak a server.
struct Running(Option<Child>);

impl Running {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child still owned")
    }

    /// Hands the child over to be waited on; it is no longer killed on drop.
    fn release(mut self) -> Child {
        self.0.take().expect("child still owned")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn logs_json_at_start_and_stops_cleanly_on_sigterm() {
    let child = gateway_command()
        .env("GATEWAY_FAULTS", r#"{"seed": 1}"#)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    let mut running = Running(Some(child));
    let stdout = running.child().stdout.take().expect("piped stdout");
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let started: Value = next_log_line(&lines_rx, "gateway started");
    assert_eq!(started["level"], "INFO", "{started}");
    let listen = started["fields"]["listen"]
        .as_str()
        .expect("start-up log names the listen address")
        .to_owned();
    assert!(
        started["fields"]["profile"]
            .as_str()
            .is_some_and(|profile| profile.contains("\"seed\":1")),
        "{started}"
    );
    let health = http_get(&listen, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let pid = running.child().id().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -TERM {pid} failed");
    let stopping = next_log_line(&lines_rx, "shutting down");
    assert_eq!(stopping["fields"]["signal"], "SIGTERM", "{stopping}");
    next_log_line(&lines_rx, "gateway stopped");

    let mut child = running.release();
    let (exit_tx, exit_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = exit_tx.send(child.wait());
    });
    let status = exit_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("gateway exited within 5 s of SIGTERM")
        .expect("wait for gateway");
    assert!(status.success(), "gateway exited with {status}");
}

/// Reads JSON log lines until one whose message is `message`, failing after 10 s with the lines
/// seen.
fn next_log_line(lines: &mpsc::Receiver<String>, message: &str) -> Value {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => {
                let parsed: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|error| panic!("log line is not JSON ({error}): {line}"));
                if parsed["fields"]["message"] == message {
                    return parsed;
                }
                seen.push(line);
            }
            Err(error) => panic!("no {message:?} log line ({error}); saw {seen:#?}"),
        }
    }
}

/// A minimal HTTP/1.1 GET, enough to probe `/healthz` without an async runtime.
fn http_get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the gateway");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
}
