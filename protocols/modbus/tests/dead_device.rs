//! A device that is not there: the driver backs off, never spins.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::run_driver;
use dcmms_modbus::{ModbusTcpConfig, PointConfig, Table};
use dcmms_shared::Quality;
use tokio::net::TcpListener;

fn config(address: String) -> ModbusTcpConfig {
    let mut cfg = ModbusTcpConfig::new("dead", address);
    cfg.points = vec![
        PointConfig::new("a", Table::Holding, 0),
        PointConfig::new("b", Table::Coil, 0),
    ];
    cfg.poll_interval_ms = 10;
    cfg.timeout_ms = 200;
    cfg.backoff_min_ms = 50;
    cfg.backoff_max_ms = 400;
    cfg
}

#[tokio::test]
async fn refused_connections_back_off() {
    // A port that was just free: connections are refused.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);

    let run = run_driver(&config(addr.to_string()), Duration::from_secs(2)).await;
    let s = &run.stats;
    assert!(run.ran_until_cancelled);
    assert!(!s.connected);
    assert_eq!(s.polls_ok, 0);
    let attempts = s.transport_errors + s.timeouts;
    eprintln!("connection attempts in 2 s: {attempts}");
    // Polling every 10 ms without backoff would try ~200 times; a fixed 50 ms
    // floor ~40 times; doubling with jitter gives about 11.
    assert!(
        (3..=20).contains(&attempts),
        "{attempts} connection attempts in 2 s: {s:?}"
    );
    assert_eq!(s.reconnects, attempts - 1);
    assert_eq!(s.polls_failed, attempts);
    // Every attempt reports each point once as Bad, and nothing else is sent.
    assert_eq!(run.batches.len() as u64, attempts);
    for (_, batch) in &run.batches {
        assert_eq!(batch.len(), 2);
        assert!(batch
            .iter()
            .all(|x| x.quality == Quality::Bad && x.value.is_nan()));
    }
    // The gaps grow past the 50 ms minimum (plus one 10 ms poll tick).
    let times: Vec<_> = run.batches.iter().map(|(t, _)| *t).collect();
    let longest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        longest > Duration::from_millis(150),
        "longest gap {longest:?}"
    );
}

#[tokio::test]
async fn server_that_hangs_up_is_retried_with_backoff() {
    // Accepts and closes at once: each connection attempt is counted here.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });

    let run = run_driver(&config(addr.to_string()), Duration::from_secs(2)).await;
    server.abort();
    let n = accepted.load(Ordering::SeqCst) as u64;
    eprintln!("connections accepted in 2 s: {n}");
    assert!(
        (3..=20).contains(&n),
        "{n} connections in 2 s: {:?}",
        run.stats
    );
    assert_eq!(run.stats.reconnects, n - 1);
    assert_eq!(run.stats.polls_ok, 0);
    assert_eq!(run.stats.errors(), n, "{:?}", run.stats);
    assert!(run.samples().all(|x| x.quality == Quality::Bad));
}
