//! A real S3-compatible server for the tests: moto_server (from PyPI, installed into `.venv` by
//! `make test`) on 127.0.0.1, one per test binary, one bucket per test.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};

pub struct S3Server {
    pub endpoint: String,
    log: Arc<Mutex<Vec<String>>>,
    _child: Child,
    // Held open for the life of the test binary: when the binary exits, however it exits, the
    // pipe closes and the wrapper shell kills the server, so no test run leaks a process.
    _lifeline: Mutex<ChildStdin>,
}

fn moto_server() -> String {
    std::env::var("CUBE_MOTO_SERVER").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/moto_server").to_owned()
    })
}

impl S3Server {
    /// The shared server of this test binary.
    pub fn shared() -> &'static S3Server {
        static SERVER: OnceLock<S3Server> = OnceLock::new();
        SERVER.get_or_init(|| S3Server::start(&[]))
    }

    /// Starts a server; `env` is passed to moto (e.g. to switch authentication on).
    pub fn start(env: &[(&str, &str)]) -> S3Server {
        let bin = moto_server();
        if !std::path::Path::new(&bin).exists() {
            // One sentence with the fix, not a panic message and a backtrace hint: failing the
            // test by unwinding without the panic hook.
            eprintln!("the S3 tests need moto_server, which is not at {bin}: run `make venv` (or `make test`), or set CUBE_MOTO_SERVER");
            std::panic::resume_unwind(Box::new("moto_server is missing"));
        }
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" -H 127.0.0.1 -p 0 2>&1 & read _; kill $!"#)
            .arg(&bin)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("moto_server exited before it listened")
                .unwrap();
            if let Some(at) = line.find("http://127.0.0.1:") {
                break line[at..].trim().to_owned();
            }
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let lifeline = Mutex::new(child.stdin.take().unwrap());
        S3Server {
            endpoint,
            log,
            _child: child,
            _lifeline: lifeline,
        }
    }

    /// The environment that points the binary at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The server's access log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id("testing")
                .with_secret_access_key("testing-secret")
                .build()
                .unwrap(),
        )
    }

    pub fn create_bucket(&self, bucket: &str) {
        let url = format!("{}/{bucket}", self.endpoint);
        let status = runtime().block_on(async {
            reqwest::Client::new()
                .put(&url)
                .send()
                .await
                .unwrap()
                .status()
        });
        assert!(status.is_success(), "creating bucket {bucket}: {status}");
    }

    /// Multipart uploads begun in `bucket` and neither completed nor aborted.
    pub fn open_uploads(&self, bucket: &str) -> usize {
        let url = format!("{}/{bucket}?uploads", self.endpoint);
        let body = runtime().block_on(async {
            reqwest::Client::new()
                .get(&url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        assert!(body.contains("ListMultipartUploadsResult"), "{body}");
        body.matches("<Upload>").count()
    }

    /// Every key under `prefix` in `bucket`.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let store = self.store(bucket);
        let mut keys: Vec<String> = runtime().block_on(async {
            store
                .list(Some(&ObjPath::from(prefix)))
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await
                .unwrap()
        });
        keys.sort();
        keys
    }

    /// Copies every object under `prefix` into `dir` (keys relative to the prefix).
    pub fn download(&self, bucket: &str, prefix: &str, dir: &std::path::Path) {
        let store = self.store(bucket);
        let keys = self.keys(bucket, prefix);
        runtime().block_on(async {
            for key in keys {
                let bytes = store
                    .get(&ObjPath::from(key.as_str()))
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let rel = key.strip_prefix(prefix).unwrap().trim_start_matches('/');
                let path = dir.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::File::create(&path)
                    .unwrap()
                    .write_all(&bytes)
                    .unwrap();
            }
        });
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
