//! The client commands read the daemon's answers into the API's documents: an answer
//! that is not the document expected (another program on the port, a daemon of another
//! version) is an error naming the URL and the document, never a panic or a made-up
//! table.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

/// A server that is no ringleader daemon: answers every request with `status` and
/// `body`, until the test ends.
fn impostor(status: &'static str, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn ringleader(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(args)
        .env_remove("RINGLEADER_TOKEN")
        .output()
        .expect("run ringleader")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_answer_missing_keys_names_the_url_and_the_document_expected() {
    let url = impostor(
        "200 OK",
        r#"{"schema": "ringleader.status/v1", "id": "r1"}"#,
    );
    let out = ringleader(&["status", "r1", "--server", &url]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        out.stdout.is_empty(),
        "nothing printed as if it were a status"
    );
    assert!(
        e.contains(&format!(
            "GET {url}/v1/rollouts/r1 is not a `ringleader.status/v1` document"
        )),
        "{e}"
    );
    assert!(e.contains("missing field"), "{e}");
}

#[test]
fn another_document_is_refused_by_its_schema() {
    let url = impostor(
        "200 OK",
        r#"{"schema": "ringleader.events/v1", "rollout": "r1", "events": [], "next": 0, "ended": true}"#,
    );
    let out = ringleader(&["devices", "r1", "--server", &url]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("`ringleader.devices/v1`"), "{e}");
    assert!(e.contains("\"ringleader.events/v1\""), "{e}");
}

#[test]
fn an_error_that_is_not_ringleader_error_v1_is_shown_with_its_status() {
    let url = impostor("502 Bad Gateway", "<html>upstream gone</html>");
    let out = ringleader(&["events", "r1", "--server", &url]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains(&format!(
            "GET {url}/v1/rollouts/r1/events?since=0&wait=0 answered HTTP 502 without a `ringleader.error/v1` document: <html>upstream gone</html>"
        )),
        "{e}"
    );
}
