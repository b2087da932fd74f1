//! tokio_sync: the scenarios of bench/sync_compare.cc with tokio::sync (mpsc, Mutex, Semaphore),
//! same CLI, same checks, same output line, so that bench/run_sync_compare.sh can put the two
//! side by side (issue 6, acceptance 3).
//!
//!   tokio_sync [--threads K] SCENARIO N
//!
//! --threads 1 runs on a current-thread runtime (peer=tokio_ct), K > 1 on a multi-thread
//! runtime with K workers (peer=tokio_mtK). The scenario runs in a task spawned on the runtime
//! (like the peers of ../shared/peers), which spawns the scenario's tasks and joins them; the
//! time covers the spawns, the work and the joins. A wrong result prints an error and exits 1.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, Mutex, Semaphore};

const CONTENDED_TASKS: u64 = 8;
const UNCONTENDED_CAPACITY: usize = 1024;
const CONTENDED_CAPACITY: usize = 64;
const SEMAPHORE_PERMITS: usize = 4;
const PRODUCER_SHIFT: u32 = 40;

fn fail(what: &str) -> ! {
    eprintln!("tokio_sync: {}", what);
    std::process::exit(1);
}

/// The share of N that task `i` of `tasks` does.
fn share(n: u64, tasks: u64, i: u64) -> u64 {
    n / tasks + u64::from(i < n % tasks)
}

async fn join_all(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        if let Err(e) = handle.await {
            fail(&format!("join: {}", e));
        }
    }
}

async fn mpsc_scenario(n: u64, producers: u64, capacity: usize) {
    let (tx, mut rx) = mpsc::channel::<u64>(capacity);
    let mut handles = Vec::with_capacity(producers as usize + 1);
    for p in 0..producers {
        let count = share(n, producers, p);
        let tx = tx.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..count {
                if tx.send(p << PRODUCER_SHIFT | i).await.is_err() {
                    fail("send: the channel is closed");
                }
            }
        }));
    }
    drop(tx); // only the producers send: the stream ends when they are done
    let consumer = tokio::spawn(async move {
        let mut next_seq = vec![0u64; producers as usize];
        let mut received = 0u64;
        while let Some(value) = rx.recv().await {
            let producer = (value >> PRODUCER_SHIFT) as usize;
            let seq = value & ((1u64 << PRODUCER_SHIFT) - 1);
            if producer >= next_seq.len() || next_seq[producer] != seq {
                fail("recv: a message out of order, lost or duplicated");
            }
            next_seq[producer] += 1;
            received += 1;
        }
        received
    });
    join_all(handles).await;
    let received = consumer.await.unwrap_or_else(|e| fail(&format!("join: {}", e)));
    if received != n {
        fail(&format!("mpsc: received {} of {}", received, n));
    }
}

async fn mutex_scenario(n: u64, tasks: u64) {
    let mutex = Arc::new(Mutex::new(0u64));
    let mut handles = Vec::with_capacity(tasks as usize);
    for t in 0..tasks {
        let count = share(n, tasks, t);
        let mutex = mutex.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..count {
                let mut guard = mutex.lock().await;
                *guard += 1;
            }
        }));
    }
    join_all(handles).await;
    let counter = *mutex.lock().await;
    if counter != n {
        fail(&format!("mutex: counter {} != {}", counter, n));
    }
}

async fn semaphore_scenario(n: u64, tasks: u64) {
    let semaphore = Arc::new(Semaphore::new(SEMAPHORE_PERMITS));
    let counter = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(tasks as usize);
    for t in 0..tasks {
        let count = share(n, tasks, t);
        let semaphore = semaphore.clone();
        let counter = counter.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..count {
                let permit = semaphore
                    .acquire()
                    .await
                    .unwrap_or_else(|e| fail(&format!("acquire: {}", e)));
                counter.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            }
        }));
    }
    join_all(handles).await;
    let counter = counter.load(Ordering::Relaxed);
    if counter != n {
        fail(&format!("semaphore: counter {} != {}", counter, n));
    }
    if semaphore.available_permits() != SEMAPHORE_PERMITS {
        fail("semaphore: permits not back");
    }
}

async fn run_scenario(scenario: String, n: u64) -> f64 {
    let t0 = Instant::now();
    match scenario.as_str() {
        "mpsc_uncontended" => mpsc_scenario(n, 1, UNCONTENDED_CAPACITY).await,
        "mpsc_contended" => mpsc_scenario(n, CONTENDED_TASKS, CONTENDED_CAPACITY).await,
        "mutex_uncontended" => mutex_scenario(n, 1).await,
        "mutex_contended" => mutex_scenario(n, CONTENDED_TASKS).await,
        "semaphore_uncontended" => semaphore_scenario(n, 1).await,
        "semaphore_contended" => semaphore_scenario(n, CONTENDED_TASKS).await,
        other => fail(&format!("unknown scenario {}", other)),
    }
    t0.elapsed().as_secs_f64()
}

const SCENARIOS: [&str; 6] = [
    "mpsc_uncontended",
    "mpsc_contended",
    "mutex_uncontended",
    "mutex_contended",
    "semaphore_uncontended",
    "semaphore_contended",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut threads: usize = 2;
    let mut i = 1;
    while i < args.len() && args[i].starts_with("--") {
        if args[i] == "--threads" && i + 1 < args.len() {
            threads = args[i + 1]
                .parse()
                .unwrap_or_else(|_| fail(&format!("bad --threads {}", args[i + 1])));
            i += 2;
        } else {
            fail(&format!("unknown option {}", args[i]));
        }
    }
    if threads < 1 {
        fail("--threads must be >= 1");
    }
    if i + 2 != args.len() {
        eprintln!(
            "usage: tokio_sync [--threads K] SCENARIO N\n  SCENARIO: {}",
            SCENARIOS.join(" ")
        );
        std::process::exit(2);
    }
    let scenario = args[i].clone();
    let n: u64 = match args[i + 1].parse() {
        Ok(n) if n > 0 => n,
        _ => fail(&format!("bad N: {}", args[i + 1])),
    };
    if !SCENARIOS.contains(&scenario.as_str()) {
        fail(&format!("unknown scenario {}", scenario));
    }
    let (rt, peer) = if threads == 1 {
        (
            tokio::runtime::Builder::new_current_thread().build().unwrap(),
            "tokio_ct".to_string(),
        )
    } else {
        (
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .build()
                .unwrap(),
            format!("tokio_mt{}", threads),
        )
    };
    let seconds = rt
        .block_on(rt.spawn(run_scenario(scenario.clone(), n)))
        .unwrap_or_else(|e| fail(&format!("scenario task: {}", e)));
    println!(
        "peer={} scenario={} n={} seconds={:.6} ops_per_sec={:.1}",
        peer,
        scenario,
        n,
        seconds,
        if seconds > 0.0 { n as f64 / seconds } else { 0.0 }
    );
}
