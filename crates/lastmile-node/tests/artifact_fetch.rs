//! `LocalHost::ensure_release` with a cache of its own: an artifact the
//! cache lacks is fetched from the host's `ArtifactSource` and kept only if
//! its content hashes to its id; one already there is never fetched.
//! Real blob stores in temp dirs, a real instance where one starts.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lastmile_artifact::{BlobStore, pack};
use lastmile_host::{
    ArtifactChunks, ArtifactSource, ArtifactSourceError, HealthSpec, HostError, HostHandle,
    InstanceSpec, ReleaseRef, StopSignal, StopSpec,
};
use lastmile_node::{BlobStoreSource, LocalHost};
use lastmile_router::RouterConfig;

/// The controller's side: a blob store holding two artifacts.
struct Controller {
    state: tempfile::TempDir,
    /// Serves `hello.txt` saying `one`.
    one: String,
    /// Another artifact (`hello.txt` saying `two`).
    two: String,
}

impl Controller {
    fn new() -> Controller {
        let state = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(state.path()).unwrap();
        let mut ids = ["one", "two"].into_iter().map(|text| {
            let app = tempfile::tempdir().unwrap();
            // Many chunks' worth, so a fetch is not one write.
            let body: String = (0..20_000).map(|line| format!("{text} {line}\n")).collect();
            std::fs::write(app.path().join("hello.txt"), body).unwrap();
            pack(app.path(), &["hello.txt".to_owned()], &blobs)
                .unwrap()
                .id
        });
        let (one, two) = (ids.next().unwrap(), ids.next().unwrap());
        Controller { state, one, two }
    }

    fn blobs(&self) -> BlobStore {
        BlobStore::open(self.state.path()).unwrap()
    }

    /// The blob of `id` as the controller holds it.
    fn blob(&self, id: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.blobs()
            .open_blob(id)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    }
}

/// A real source that counts how often it is opened.
#[derive(Debug)]
struct CountingSource {
    inner: Box<dyn ArtifactSource>,
    opens: AtomicUsize,
}

impl CountingSource {
    fn new(inner: impl ArtifactSource + 'static) -> Arc<CountingSource> {
        Arc::new(CountingSource {
            inner: Box::new(inner),
            opens: AtomicUsize::new(0),
        })
    }

    fn opens(&self) -> usize {
        self.opens.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl ArtifactSource for CountingSource {
    async fn open(&self, id: &str) -> Result<Box<dyn ArtifactChunks>, ArtifactSourceError> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        self.inner.open(id).await
    }
}

/// A fake read of an artifact: yields what it was given, in order, and
/// says the size of the whole blob.
struct FakeChunks {
    pieces: VecDeque<Result<Vec<u8>, ArtifactSourceError>>,
    size: u64,
}

impl FakeChunks {
    /// The blob in 4 KiB chunks, of which only the first `yielded` bytes
    /// come, then `then` if given.
    fn of(blob: &[u8], yielded: usize, then: Option<ArtifactSourceError>) -> Box<FakeChunks> {
        let mut pieces: VecDeque<_> = blob[..yielded]
            .chunks(4096)
            .map(|chunk| Ok(chunk.to_vec()))
            .collect();
        pieces.extend(then.map(Err));
        Box::new(FakeChunks {
            pieces,
            size: blob.len() as u64,
        })
    }
}

#[async_trait::async_trait]
impl ArtifactChunks for FakeChunks {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }

    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ArtifactSourceError> {
        self.pieces.pop_front().transpose()
    }
}

/// A fake source, as a damaged copy on the controller would be: answers
/// every id with another artifact's blob, a whole zstd stream whose content
/// is not what the id names.
#[derive(Debug)]
struct FakeCorruptSource {
    blob: Vec<u8>,
}

#[async_trait::async_trait]
impl ArtifactSource for FakeCorruptSource {
    async fn open(&self, _id: &str) -> Result<Box<dyn ArtifactChunks>, ArtifactSourceError> {
        Ok(FakeChunks::of(&self.blob, self.blob.len(), None))
    }
}

/// A fake source, as a connection that breaks would be: yields the first
/// half of the blob, then fails.
#[derive(Debug)]
struct FakeBrokenSource {
    blob: Vec<u8>,
}

#[async_trait::async_trait]
impl ArtifactSource for FakeBrokenSource {
    async fn open(&self, _id: &str) -> Result<Box<dyn ArtifactChunks>, ArtifactSourceError> {
        let error = ArtifactSourceError::Io {
            message: "connection reset by the controller".to_owned(),
        };
        Ok(FakeChunks::of(&self.blob, self.blob.len() / 2, Some(error)))
    }
}

fn open_host(state: &Path, source: Arc<dyn ArtifactSource>) -> LocalHost {
    LocalHost::open(
        "local",
        state,
        RouterConfig::default(),
        source,
        BTreeMap::new(),
    )
    .unwrap()
}

fn release(artifact_id: &str) -> ReleaseRef {
    ReleaseRef {
        id: "r1".to_owned(),
        version: "v1".to_owned(),
        artifact_id: artifact_id.to_owned(),
    }
}

/// Every file under a state directory's `blobs/`, temp files included.
fn cached_files(state: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut directories = vec![state.join("blobs")];
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(directory).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                directories.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_missing_from_the_cache_is_fetched_verified_and_its_instance_starts() {
    let controller = Controller::new();
    let source = CountingSource::new(BlobStoreSource::new(controller.blobs()));
    let state = tempfile::tempdir().unwrap();
    let host = open_host(state.path(), source.clone());
    assert_eq!(cached_files(state.path()), Vec::<PathBuf>::new());

    let release = release(&controller.one);
    host.ensure_release(&release).await.unwrap();

    assert_eq!(source.opens(), 1);
    let cache = BlobStore::open(state.path()).unwrap();
    let cached = cache
        .path(&controller.one)
        .expect("the blob is in the cache");
    assert_eq!(
        cached_files(state.path()),
        vec![cached.clone()],
        "no temp file left"
    );
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        controller.blob(&controller.one)
    );
    // Unpacking checks the content against the id again.
    let check = tempfile::tempdir().unwrap();
    lastmile_artifact::unpack(&cache, &controller.one, check.path()).unwrap();

    let started = host
        .start_instance(&InstanceSpec {
            instance_id: "web.r1.0".to_owned(),
            environment: "web".to_owned(),
            release,
            index: 0,
            command: "exec python3 -m http.server \"$PORT\" --bind 127.0.0.1".to_owned(),
            env: BTreeMap::new(),
            health: HealthSpec {
                // Ready only if the fetched release's file is served.
                path: "/hello.txt".to_owned(),
                interval: Duration::from_millis(100),
                timeout: Duration::from_millis(500),
                healthy_threshold: 1,
                unhealthy_threshold: 3,
                start_timeout: Duration::from_secs(10),
            },
            stop: StopSpec {
                signal: StopSignal::Term,
                grace: Duration::from_secs(2),
            },
        })
        .await
        .unwrap();
    let answer = host
        .probe(&started.instance_id, "/hello.txt", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        answer.body.starts_with("one 0\n"),
        "{:?}",
        answer.body.get(..20)
    );

    host.drain_and_stop(Duration::from_secs(2)).await;
    assert!(host.supervisor().list_without_main_pid().is_empty());
}

#[tokio::test]
async fn an_artifact_already_in_the_cache_is_not_fetched() {
    // `lastmile up`: the controller's store is the host's cache.
    let controller = Controller::new();
    let source = CountingSource::new(BlobStoreSource::new(controller.blobs()));
    let host = open_host(controller.state.path(), source.clone());

    host.ensure_release(&release(&controller.one))
        .await
        .unwrap();

    assert_eq!(source.opens(), 0, "the source is not asked");
    assert!(
        host.supervisor()
            .release_dir("r1")
            .join("hello.txt")
            .is_file()
    );
}

#[tokio::test]
async fn bytes_whose_content_is_not_the_artifact_are_refused_and_nothing_is_kept() {
    let controller = Controller::new();
    let source = Arc::new(FakeCorruptSource {
        blob: controller.blob(&controller.two),
    });
    let state = tempfile::tempdir().unwrap();
    let host = open_host(state.path(), source);

    let error = host
        .ensure_release(&release(&controller.one))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        HostError::ArtifactMismatch {
            id: controller.one.clone(),
            actual: controller.two.clone(),
        }
    );
    insta::assert_snapshot!(error, @"artifact a4dd1d747ff9339dfd15c6975f95da364d0129850e473306c370515a8c05fec2 arrived damaged: its content hashes to 7cae3f70d70a8786f28c064a62fcf5677954bae253e73061d63c776769cded3c, not to its id; nothing was kept. Check the controller's copy (build the release again) and retry");
    assert_eq!(cached_files(state.path()), Vec::<PathBuf>::new());
    assert!(!host.supervisor().release_dir("r1").exists());
}

#[tokio::test]
async fn a_source_failing_midway_fails_the_release_naming_artifact_and_cause_and_nothing_is_kept() {
    let controller = Controller::new();
    let blob = controller.blob(&controller.one);
    let (size, half) = (blob.len(), blob.len() / 2);
    let source = Arc::new(FakeBrokenSource { blob });
    let state = tempfile::tempdir().unwrap();
    let host = open_host(state.path(), source);

    let error = host
        .ensure_release(&release(&controller.one))
        .await
        .unwrap_err();

    let HostError::ArtifactFetch { id, reason } = &error else {
        panic!("expected a fetch error, got {error:?}");
    };
    assert_eq!(id, &controller.one);
    assert!(
        reason.contains("connection reset by the controller"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("after {half} of {size} bytes")),
        "{reason}"
    );
    insta::assert_snapshot!(error, @"cannot fetch artifact a4dd1d747ff9339dfd15c6975f95da364d0129850e473306c370515a8c05fec2: its source failed after 6406 of 12813 bytes: connection reset by the controller; nothing of it was kept, so deploying again retries the fetch");
    assert_eq!(cached_files(state.path()), Vec::<PathBuf>::new());
    assert!(!host.supervisor().release_dir("r1").exists());
}

#[tokio::test]
async fn an_artifact_the_source_lacks_is_missing() {
    let controller = Controller::new();
    let empty = tempfile::tempdir().unwrap();
    let source = Arc::new(BlobStoreSource::open(empty.path()).unwrap());
    let state = tempfile::tempdir().unwrap();
    let host = open_host(state.path(), source);

    let error = host
        .ensure_release(&release(&controller.one))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        HostError::MissingArtifact {
            id: controller.one.clone()
        }
    );
    assert_eq!(cached_files(state.path()), Vec::<PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_of_one_artifact_both_succeed_and_keep_one_whole_blob() {
    let controller = Controller::new();
    let source = CountingSource::new(BlobStoreSource::new(controller.blobs()));
    let state = tempfile::tempdir().unwrap();
    let host = open_host(state.path(), source.clone());

    let release = release(&controller.one);
    let (first, second) =
        tokio::join!(host.ensure_release(&release), host.ensure_release(&release));
    first.unwrap();
    second.unwrap();

    let cache = BlobStore::open(state.path()).unwrap();
    let cached = cache.path(&controller.one).unwrap();
    assert_eq!(cached_files(state.path()), vec![cached.clone()]);
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        controller.blob(&controller.one)
    );
    assert!(
        host.supervisor()
            .release_dir("r1")
            .join("hello.txt")
            .is_file()
    );
}
