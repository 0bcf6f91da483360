//! A raw-TCP server that answers badly: the driver counts each kind of
//! failure, reports Bad samples, recovers, and never panics or stops.
//!
//! Every even-numbered request gets a correct answer, every odd one the
//! misbehaviour under test, so each scenario also shows recovery.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{run_driver, Run};
use dcmms_modbus::{ModbusTcpConfig, PointConfig, Table};
use dcmms_shared::Quality;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const VALUE: u16 = 1234;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Misbehaviour {
    /// Exception response, code 2 (illegal data address).
    Exception,
    /// Bytes that are not Modbus at all.
    Garbage,
    /// The first 5 bytes of a correct response, then the socket is closed.
    TruncatedThenClose,
    /// The first 9 bytes of a correct response, then silence.
    TruncatedThenStall,
    /// A correct response under another transaction id.
    WrongTransactionId,
    /// An MBAP header whose length field claims 300 bytes.
    OversizedLength,
    /// A well-formed response with fewer registers than asked for.
    ShortRegisterCount,
    /// A well-formed response for another function code.
    WrongFunction,
}

/// (connection number, request number) of every request the server saw.
type Seen = Arc<Mutex<Vec<(usize, usize)>>>;

fn mbap(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = tid.to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    f.push(unit);
    f.extend_from_slice(pdu);
    f
}

/// Reads one request frame: (transaction id, unit, pdu).
async fn read_request(s: &mut TcpStream) -> Option<(u16, u8, Vec<u8>)> {
    let mut header = [0u8; 7];
    s.read_exact(&mut header).await.ok()?;
    let len = u16::from_be_bytes([header[4], header[5]]) as usize;
    let mut pdu = vec![0u8; len.checked_sub(1)?];
    s.read_exact(&mut pdu).await.ok()?;
    Some((u16::from_be_bytes([header[0], header[1]]), header[6], pdu))
}

fn good_pdu(request: &[u8]) -> Vec<u8> {
    let count = u16::from_be_bytes([request[3], request[4]]) as usize;
    let mut pdu = vec![request[0], (count * 2) as u8];
    for _ in 0..count {
        pdu.extend_from_slice(&VALUE.to_be_bytes());
    }
    pdu
}

async fn serve(listener: TcpListener, mode: Misbehaviour, seen: Seen) {
    let requests = Arc::new(AtomicUsize::new(0));
    let mut conn_no = 0;
    while let Ok((mut stream, _)) = listener.accept().await {
        conn_no += 1;
        let conn = conn_no;
        let requests = Arc::clone(&requests);
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some((tid, unit, pdu)) = read_request(&mut stream).await {
                let n = requests.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push((conn, n));
                let good = mbap(tid, unit, &good_pdu(&pdu));
                if n.is_multiple_of(2) {
                    if stream.write_all(&good).await.is_err() {
                        return;
                    }
                    continue;
                }
                let reply = match mode {
                    Misbehaviour::Exception => mbap(tid, unit, &[pdu[0] | 0x80, 0x02]),
                    Misbehaviour::Garbage => b"GARBAGE GARBAGE GARBAGE".to_vec(),
                    Misbehaviour::TruncatedThenClose => good[..5].to_vec(),
                    Misbehaviour::TruncatedThenStall => good[..9].to_vec(),
                    Misbehaviour::WrongTransactionId => {
                        mbap(tid.wrapping_add(7), unit, &good_pdu(&pdu))
                    }
                    Misbehaviour::OversizedLength => {
                        let mut f = good.clone();
                        f[4..6].copy_from_slice(&300u16.to_be_bytes());
                        f
                    }
                    Misbehaviour::ShortRegisterCount => mbap(tid, unit, &[pdu[0], 2, 0, 1]),
                    Misbehaviour::WrongFunction => {
                        let mut p = good_pdu(&pdu);
                        p[0] = 4;
                        mbap(tid, unit, &p)
                    }
                };
                if stream.write_all(&reply).await.is_err() {
                    return;
                }
                match mode {
                    Misbehaviour::TruncatedThenClose => return,
                    Misbehaviour::TruncatedThenStall => {
                        // Keep the socket open and say nothing more.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    _ => {}
                }
            }
        });
    }
}

async fn scenario(mode: Misbehaviour) -> (Run, Vec<(usize, usize)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let server = tokio::spawn(serve(listener, mode, Arc::clone(&seen)));

    let mut cfg = ModbusTcpConfig::new("odd", addr.to_string());
    cfg.points = vec![
        PointConfig::new("a", Table::Holding, 0),
        PointConfig::new("b", Table::Holding, 2).with_scale(0.1, 0.0),
    ];
    cfg.poll_interval_ms = 20;
    cfg.timeout_ms = 250;
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 40;
    let run = run_driver(&cfg, Duration::from_millis(1500)).await;
    server.abort();
    let seen = seen.lock().unwrap().clone();

    // Common to every scenario: still running, good and bad values both
    // reported, good values correct, and good values again after a bad one.
    assert!(run.ran_until_cancelled, "{mode:?}");
    let a = run.names.id("odd/a");
    let b = run.names.id("odd/b");
    let good: Vec<_> = run
        .samples()
        .filter(|s| s.quality == Quality::Good)
        .collect();
    assert!(
        !good.is_empty(),
        "{mode:?}: no good samples, {:?}",
        run.stats
    );
    for s in &good {
        let want = if s.point == a {
            1234.0
        } else if s.point == b {
            123.4
        } else {
            panic!()
        };
        assert_eq!(s.value, want, "{mode:?}");
    }
    let first_bad = run
        .batches
        .iter()
        .position(|(_, b)| b.iter().any(|s| s.quality == Quality::Bad))
        .unwrap_or_else(|| panic!("{mode:?}: no bad samples, {:?}", run.stats));
    assert!(
        run.batches[first_bad..]
            .iter()
            .any(|(_, b)| b.iter().all(|s| s.quality == Quality::Good)),
        "{mode:?}: never recovered"
    );
    for (_, batch) in &run.batches {
        assert_eq!(batch.len(), 2, "{mode:?}: one sample per point per cycle");
    }
    assert!(
        run.stats.polls_ok >= 2 && run.stats.polls_failed >= 2,
        "{mode:?}: {:?}",
        run.stats
    );
    assert_eq!(
        run.stats.polls_ok + run.stats.polls_failed,
        run.batches.len() as u64
    );
    (run, seen)
}

#[tokio::test]
async fn exceptions_keep_the_connection() {
    let (run, seen) = scenario(Misbehaviour::Exception).await;
    let s = &run.stats;
    assert!(s.exceptions >= 5, "{s:?}");
    assert_eq!(
        (s.timeouts, s.transport_errors, s.decode_errors),
        (0, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.reconnects, 0);
    assert!(
        seen.iter().all(|(conn, _)| *conn == 1),
        "one connection throughout"
    );
    assert!(run.connected_before_cancel);
    assert!(!s.connected, "disconnected after shutdown");
}

#[tokio::test]
async fn garbage_is_a_decode_error_and_reconnects() {
    let (run, _) = scenario(Misbehaviour::Garbage).await;
    let s = &run.stats;
    assert!(s.decode_errors >= 2 && s.reconnects >= 2, "{s:?}");
    assert_eq!(s.timeouts, 0, "refused at once, not after a timeout: {s:?}");
}

#[tokio::test]
async fn truncated_frame_then_close() {
    let (run, _) = scenario(Misbehaviour::TruncatedThenClose).await;
    let s = &run.stats;
    assert!(
        s.transport_errors + s.decode_errors >= 2 && s.reconnects >= 2,
        "{s:?}"
    );
    assert_eq!(s.timeouts, 0, "{s:?}");
}

#[tokio::test]
async fn truncated_frame_then_silence_times_out() {
    let (run, _) = scenario(Misbehaviour::TruncatedThenStall).await;
    let s = &run.stats;
    assert!(s.timeouts >= 2 && s.reconnects >= 2, "{s:?}");
    assert_eq!(s.decode_errors, 0, "{s:?}");
}

#[tokio::test]
async fn wrong_transaction_id_is_a_decode_error() {
    let (run, _) = scenario(Misbehaviour::WrongTransactionId).await;
    let s = &run.stats;
    assert!(s.decode_errors >= 2 && s.reconnects >= 2, "{s:?}");
    assert_eq!(s.timeouts, 0, "{s:?}");
}

#[tokio::test]
async fn oversized_length_is_refused_without_waiting() {
    let (run, _) = scenario(Misbehaviour::OversizedLength).await;
    let s = &run.stats;
    assert!(s.decode_errors >= 2 && s.reconnects >= 2, "{s:?}");
    assert_eq!(s.timeouts, 0, "the frame guard refuses it at once: {s:?}");
}

#[tokio::test]
async fn short_register_count_keeps_the_connection() {
    let (run, _) = scenario(Misbehaviour::ShortRegisterCount).await;
    let s = &run.stats;
    assert!(s.decode_errors >= 5, "{s:?}");
    assert_eq!(s.reconnects, 0, "{s:?}");
}

#[tokio::test]
async fn wrong_function_code_is_a_decode_error() {
    let (run, _) = scenario(Misbehaviour::WrongFunction).await;
    let s = &run.stats;
    assert!(s.decode_errors >= 2, "{s:?}");
    assert_eq!(s.timeouts, 0, "{s:?}");
}
