//! I/O-bound work on the thread pool: fetching 20 web pages one after the
//! other, then all at once with `submit` and `as_completed`, and the
//! speed-up. One of the URLs does not exist: its task reports the error and
//! the other 19 succeed.
//!
//! Ported from the `load_url` program of the "Multiprocessing and
//! Multithreading" tutorial (a `ThreadPoolExecutor` fetching pages,
//! `as_completed`, one made-up address that fails) and the sequential versus
//! threaded timing of `request_sequential` / `request_concurrent` in the
//! "Python multithreading module" tutorial. No network is needed: the
//! example serves the pages itself, on 127.0.0.1, each after a delay of
//! 100–250 ms as a slow server would.
//!
//! Run with `cargo run --release --example downloads`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{as_completed, ThreadPoolExecutor};

/// How many pages there are to fetch, the missing one included.
const PAGES: usize = 20;

/// The one address that the server does not know.
const MISSING: &str = "/some-made-up-page";

/// How long the server thinks before it answers page `n`: 100 to 250 ms.
fn delay_for(n: usize) -> Duration {
    Duration::from_millis(100 + (n as u64 * 37) % 151)
}

// ---------------------------------------------------------------------
// The server: one thread per connection, HTTP/1.0, one request each.
// ---------------------------------------------------------------------

/// Starts the server on a free port of 127.0.0.1 and returns its address.
/// Its thread serves until the program ends.
fn start_server() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                if let Err(error) = serve(stream) {
                    eprintln!("server: {error}");
                }
            });
        }
    });
    Ok(address)
}

/// Answers one request: `/page/N` for N below [`PAGES`], a 404 otherwise.
fn serve(mut stream: TcpStream) -> io::Result<()> {
    let mut request_line = String::new();
    let mut reader = BufReader::new(stream.try_clone()?);
    reader.read_line(&mut request_line)?;
    // Skip the headers, up to the empty line.
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let page = path
        .strip_prefix("/page/")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n < PAGES);
    let (status, body) = match page {
        Some(n) => {
            thread::sleep(delay_for(n));
            ("200 OK", page_body(n))
        }
        None => ("404 Not Found", format!("no page at {path}\n")),
    };
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Page `n`: a few kilobytes of text, a different size for each page.
fn page_body(n: usize) -> String {
    format!("This is page {n}.\n").repeat(200 + 50 * n)
}

// ---------------------------------------------------------------------
// The client: a minimal HTTP/1.0 GET over a TcpStream.
// ---------------------------------------------------------------------

/// Fetches `url` (of the form `http://127.0.0.1:PORT/path`) and returns the
/// body; a status other than 200 is an error.
fn load_url(url: &str, timeout: Duration) -> io::Result<Vec<u8>> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an http:// URL"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let address: SocketAddr = host
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "host must be IP:port"))?;
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;

    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no end of headers"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.lines().next().and_then(|line| line.split_once(' '));
    let status = status.map(|(_version, status)| status);
    match status {
        Some(status) if status.starts_with("200") => Ok(response[split + 4..].to_vec()),
        Some(status) => Err(io::Error::other(format!("HTTP {status}"))),
        None => Err(io::Error::new(io::ErrorKind::InvalidData, "no status line")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    concurrent_futures::init();

    let server = start_server()?;
    let mut urls: Vec<String> = (0..PAGES - 1)
        .map(|n| format!("http://{server}/page/{n}"))
        .collect();
    urls.insert(PAGES / 2, format!("http://{server}{MISSING}"));
    let timeout = Duration::from_secs(10);

    println!("Fetching {PAGES} pages from {server}, one after the other...");
    let start = Instant::now();
    let mut fetched = 0;
    for url in &urls {
        match load_url(url, timeout) {
            Ok(data) => fetched += data.len(),
            Err(error) => println!("  {url} failed: {error}"),
        }
    }
    let t_sequential = start.elapsed();
    println!("  {fetched} bytes in {t_sequential:.2?}\n");

    let workers = 8;
    println!("Fetching them on a thread pool of {workers} workers, in completion order...");
    let pool = ThreadPoolExecutor::new(workers);
    let start = Instant::now();
    // Python keys a dict by future to find the URL again; here each task
    // hands its URL back with its outcome.
    let futures: Vec<_> = urls
        .iter()
        .map(|url| {
            let url = url.clone();
            pool.submit(move || {
                let outcome = load_url(&url, timeout);
                (url, outcome)
            })
        })
        .collect();
    let mut fetched = 0;
    for future in as_completed(futures) {
        // The outer `?`: the pool failed to run the task (a panic, say).
        // The inner `Result`: the task ran and the fetch failed.
        match future.result()? {
            (url, Ok(data)) => {
                println!("  {url} page is {} bytes", data.len());
                fetched += data.len();
            }
            (url, Err(error)) => println!("  {url} generated an error: {error}"),
        }
    }
    let t_pool = start.elapsed();
    println!("  {fetched} bytes in {t_pool:.2?}\n");

    println!(
        "sequential {t_sequential:.2?}, thread pool {t_pool:.2?}: {:.1}x faster",
        t_sequential.as_secs_f64() / t_pool.as_secs_f64()
    );
    Ok(())
}
