//! The threads connections are served on: two per core, each running a single-threaded tokio
//! runtime, and each accepted connection served from start to end on one of them (the one with
//! the fewest open connections), as nginx's workers do.
//!
//! Why: on tokio's shared runtime a connection's task runs on whichever worker polled its
//! socket's readiness, so a request's socket, buffers and allocations move between the cores
//! from one request to the next, and the work-stealing worker is woken to take them. Kept on one
//! thread, with its socket registered with that thread's own event loop, a request stays in one
//! core's caches (bench/analysis.md: callbacks and lookups both gained).
//!
//! Work a request starts as a task of its own (an exchange that outlives its caller) runs on the
//! same thread; the threads stop once the `ConnectionThreads` is dropped, which the application
//! does only after those tasks have had their grace period.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// Descriptors each thread holds open: its event loop's epoll and wake-up descriptors.
pub const DESCRIPTORS_PER_THREAD: u64 = 2;

/// Two, not one: a connection never moves to another thread, so while its thread waits for a
/// core (another process took it) its requests wait too. With two threads a core, such a wait
/// holds up half as many connections, and the scheduler runs the other threads meanwhile. In
/// the benchmark, which shares the cores with its load generator, the lookups' p99 fell by more
/// than a third, at the same rate or higher, for about 5% more CPU a lookup
/// (bench/analysis.md).
const THREADS_PER_CORE: usize = 2;

/// The connection threads; dropping this stops them.
pub struct ConnectionThreads {
    threads: Vec<ConnectionThread>,
}

struct ConnectionThread {
    runtime: Handle,
    /// Connections open on this thread, to pick the least loaded.
    open: Arc<AtomicUsize>,
    /// Dropped with the `ConnectionThreads`: the thread then ends, dropping what still runs on it.
    _stop: oneshot::Sender<()>,
}

impl ConnectionThreads {
    /// Starts `THREADS_PER_CORE` threads for each core the process may use.
    pub fn for_cores() -> io::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::start(THREADS_PER_CORE * cores)
    }

    fn start(count: usize) -> io::Result<Self> {
        let threads = (0..count.max(1))
            .map(ConnectionThread::start)
            .collect::<io::Result<_>>()?;
        Ok(Self { threads })
    }

    pub fn count(&self) -> usize {
        self.threads.len()
    }

    /// Serves an accepted connection on the thread with the fewest open connections: `serve`
    /// gets the socket registered with that thread's event loop.
    pub fn serve<S, F>(&self, socket: std::net::TcpStream, serve: S)
    where
        S: FnOnce(tokio::net::TcpStream) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let thread = self
            .threads
            .iter()
            .min_by_key(|thread| thread.open.load(Ordering::Relaxed))
            .expect("at least one thread");
        let open = OpenConnection::new(Arc::clone(&thread.open));
        thread.runtime.spawn(async move {
            let _open = open;
            match tokio::net::TcpStream::from_std(socket) {
                Ok(socket) => serve(socket).await,
                Err(error) => tracing::warn!(%error, "cannot serve an accepted connection"),
            }
        });
    }
}

impl ConnectionThread {
    fn start(index: usize) -> io::Result<Self> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, handle) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("connections-{index}"))
            .spawn(move || {
                // Built here, not by the caller: a runtime must not be dropped in an async
                // context, as one would be if the thread could not start. No signal driver:
                // the shared runtime handles signals, and each driver takes a descriptor.
                let runtime = match Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.send(Err(error));
                        return;
                    }
                };
                let _ = started.send(Ok(runtime.handle().clone()));
                // Returns once the sender is dropped; the runtime is then dropped here, with
                // the tasks still on it.
                let _ = runtime.block_on(stopped);
            })?;
        let runtime = handle
            .recv()
            .map_err(|_| io::Error::other("a connection thread ended as it started"))??;
        Ok(Self {
            runtime,
            open: Arc::default(),
            _stop: stop,
        })
    }
}

/// Counts a connection as open on its thread until it ends (or its task is dropped).
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::*;

    /// Long enough for any thread to run, short enough that a broken promise fails, not hangs.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// A connected pair of sockets: the server's end, to hand to the threads, and the client's.
    fn connection() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (server, client)
    }

    /// Whether `condition` held within `PATIENCE`: a task counts its connection down just after
    /// its last report.
    fn soon(condition: impl Fn() -> bool) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < PATIENCE {
            if condition() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    fn open_on(threads: &ConnectionThreads, index: usize) -> usize {
        threads.threads[index].open.load(Ordering::Relaxed)
    }

    /// Serves a connection that reads until its client closes, and reports the thread it
    /// started on once started, and the one it ended on once its client closed.
    fn serve_reading(
        threads: &ConnectionThreads,
        server: TcpStream,
    ) -> (mpsc::Receiver<String>, mpsc::Receiver<String>) {
        let (started, on) = mpsc::channel();
        let (ended, ended_on) = mpsc::channel();
        threads.serve(server, move |mut socket| async move {
            let name = || std::thread::current().name().unwrap().to_owned();
            started.send(name()).unwrap();
            let mut rest = Vec::new();
            socket.read_to_end(&mut rest).await.unwrap();
            // A test that does not wait for the end has dropped the receiver.
            let _ = ended.send(name());
        });
        (on, ended_on)
    }

    #[test]
    fn connections_go_to_the_least_loaded_thread_and_stay_there_while_open() {
        let threads = ConnectionThreads::start(2).unwrap();
        let mut open = Vec::new();
        for expected in ["connections-0", "connections-1", "connections-0"] {
            let (server, client) = connection();
            let (on, ended_on) = serve_reading(&threads, server);
            let first = on.recv_timeout(PATIENCE).unwrap();
            assert_eq!(first, expected);
            open.push((client, first, ended_on));
        }
        // The first connection closes: both threads hold one, and the first is chosen again
        // (taking turns would choose the second).
        let (client, first, ended_on) = open.remove(0);
        drop(client);
        assert_eq!(ended_on.recv_timeout(PATIENCE).unwrap(), first);
        assert!(soon(|| open_on(&threads, 0) == 1));
        let (server, _client) = connection();
        let (on, _) = serve_reading(&threads, server);
        assert_eq!(on.recv_timeout(PATIENCE).unwrap(), "connections-0");
        for (client, first, ended_on) in open {
            drop(client);
            assert_eq!(
                ended_on.recv_timeout(PATIENCE).unwrap(),
                first,
                "a connection moved to another thread"
            );
        }
    }

    #[test]
    fn two_threads_are_started_for_each_core() {
        let cores = std::thread::available_parallelism().unwrap().get();
        let threads = ConnectionThreads::for_cores().unwrap();
        assert_eq!(threads.count(), 2 * cores);
        let last = threads.count() - 1;
        let (server, _client) = connection();
        // Every thread but the last holds a connection: the next goes to the last, by its name.
        for index in 0..last {
            threads.threads[index].open.fetch_add(1, Ordering::Relaxed);
        }
        let (on, _) = serve_reading(&threads, server);
        assert_eq!(
            on.recv_timeout(PATIENCE).unwrap(),
            format!("connections-{last}")
        );
    }

    #[test]
    fn dropping_the_threads_ends_what_still_runs_on_them() {
        let threads = ConnectionThreads::start(1).unwrap();
        let (server, _client) = connection();
        let (started, running) = mpsc::channel();
        let (ended, gone) = mpsc::channel::<()>();
        threads.serve(server, move |_socket| async move {
            // Dropped with the task, which closes the channel.
            let _ended = ended;
            started.send(()).unwrap();
            std::future::pending::<()>().await;
        });
        running.recv_timeout(PATIENCE).unwrap();
        drop(threads);
        assert_eq!(
            gone.recv_timeout(PATIENCE),
            Err(RecvTimeoutError::Disconnected),
            "the task still runs"
        );
    }
}
