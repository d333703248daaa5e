//! A bare mirror of one remote repository, driven through the `git` program.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::GitError;
use crate::program::{self, Failure, Running, git};

/// Where a fetch puts the branches the remote advertised, pruned to exactly those; the
/// branches of the mirror (`refs/heads/*`) are then set from it and are never pruned, so
/// that a commit of a deleted branch stays available.
const ADVERTISED_PREFIX: &str = "refs/lastmile/advertised/";
const ADVERTISED_REFSPEC: &str = "+refs/heads/*:refs/lastmile/advertised/*";
const BRANCH_PREFIX: &str = "refs/heads/";

/// A network operation that moves less than 1000 bytes/s for 60 s has stalled; it fails
/// instead of holding the mirror forever.
const NETWORK_LIMITS: [&str; 4] = [
    "-c",
    "http.lowSpeedLimit=1000",
    "-c",
    "http.lowSpeedTime=60",
];

/// A bare mirror of one remote repository, kept under `dir`.
pub struct Mirror {
    url: String,
    dir: PathBuf,
    /// Two fetches into one mirror would race for the same ref locks; one waits instead.
    fetch_lock: Mutex<()>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("url", &redact(&self.url))
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The head of one branch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Head {
    /// Branch name without `refs/heads/` ("main").
    pub branch: String,
    /// Full 40-hex commit sha.
    pub sha: String,
}

/// Metadata of one commit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommitInfo {
    /// Full 40-hex commit sha.
    pub sha: String,
    /// Committer time, Unix milliseconds.
    pub time_ms: i64,
    /// "Name <email>" of the author.
    pub author: String,
    /// First line of the message.
    pub subject: String,
}

impl Mirror {
    /// Opens the bare mirror in `dir`, or clones `url` (file://, plain path, http://, https://) into it bare.
    /// Errors name the URL and say what to check.
    ///
    /// An existing mirror is fetched from `url` from then on, whatever URL it was cloned from.
    /// A URL that begins with `-` is refused: git would read it as an option.
    pub fn open_or_clone(url: &str, dir: &Path) -> Result<Mirror, GitError> {
        if url.starts_with('-') {
            return Err(GitError::Other(format!(
                "the repository URL {} begins with '-', which git would read as an option: give a URL (https://…, file://…) or a path (./{} for a directory of that name)",
                redact(url),
                redact(url)
            )));
        }
        let non_empty = match fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_some(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(GitError::io(dir, e)),
        };
        let mirror = Mirror {
            url: url.to_string(),
            dir: dir.to_path_buf(),
            fetch_lock: Mutex::new(()),
        };
        if non_empty {
            let mut command = git(Some(dir));
            command.args(["rev-parse", "--git-dir"]);
            program::run(command, b"").map_err(|failure| {
                failure.into_error(|message| {
                    GitError::Other(format!(
                        "{} is not empty and is not a git mirror ({message}): remove it so that {} can be cloned there",
                        dir.display(),
                        redact(url)
                    ))
                })
            })?;
        } else {
            mirror.clone_bare()?;
        }
        Ok(mirror)
    }

    fn clone_bare(&self) -> Result<(), GitError> {
        let dir = &self.dir;
        let clone_err = |failure: Failure| {
            failure.into_error(|message| GitError::Clone {
                url: redact(&self.url),
                message: scrub(&message, &self.url),
            })
        };
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(|e| GitError::io(parent, e))?;
        }
        let created = !dir.exists();
        // No template: hooks from the user's init.templateDir must not run in the mirror.
        let mut init = git(None);
        init.args(["init", "--quiet", "--bare", "--template="])
            .arg("--")
            .arg(dir);
        let result = program::run(init, b"")
            .and_then(|_| self.fetch_advertised())
            .map_err(clone_err);
        if result.is_err() {
            // A mirror without the remote's branches would be opened as a good one next time.
            remove_contents(dir, created);
        }
        result.map(|_| ())
    }

    /// The URL this mirror fetches from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fetches every branch (`+refs/heads/*:refs/heads/*`, pruning nothing) and returns
    /// the branch heads the remote advertised, sorted by branch name.
    pub fn fetch(&self) -> Result<Vec<Head>, GitError> {
        self.fetch_advertised().map_err(|failure| {
            failure.into_error(|message| GitError::Fetch {
                url: redact(&self.url),
                message: scrub(&message, &self.url),
            })
        })
    }

    fn fetch_advertised(&self) -> Result<Vec<Head>, Failure> {
        // A poisoned lock only means another fetch panicked; the refs on disk are still valid.
        let _serial = self
            .fetch_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Tags are not deployed; fetching them only costs time. FETCH_HEAD would only
        // keep a copy of the URL on disk.
        let mut fetch = git(Some(&self.dir));
        fetch
            .args(NETWORK_LIMITS)
            .args(["-c", "fetch.writeFetchHEAD=false"])
            .args(["fetch", "--quiet", "--no-tags", "--prune", "--"])
            .arg(&self.url)
            .arg(ADVERTISED_REFSPEC);
        program::run(fetch, b"")?;

        let mut list = git(Some(&self.dir));
        list.args([
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            BRANCH_PREFIX,
            ADVERTISED_PREFIX,
        ]);
        let listing = program::run(list, b"")?;
        let mut local = BTreeMap::new();
        let mut advertised = BTreeMap::new();
        for line in String::from_utf8_lossy(&listing).lines() {
            let Some((sha, name)) = line.split_once(' ') else {
                continue;
            };
            if let Some(branch) = name.strip_prefix(BRANCH_PREFIX) {
                local.insert(branch.to_owned(), sha.to_owned());
            } else if let Some(branch) = name.strip_prefix(ADVERTISED_PREFIX) {
                advertised.insert(branch.to_owned(), sha.to_owned());
            }
        }
        self.update_branches(&local, &advertised)?;
        Ok(advertised
            .into_iter()
            .map(|(branch, sha)| Head { branch, sha })
            .collect())
    }

    /// Sets each branch of the mirror to the remote's head (force: a rewritten branch
    /// follows). A kept branch that the remote deleted gives way when a new branch needs
    /// its name as a directory (`feature` → `feature/x`) or the other way round.
    fn update_branches(
        &self,
        local: &BTreeMap<String, String>,
        advertised: &BTreeMap<String, String>,
    ) -> Result<(), Failure> {
        let in_the_way = |stale: &str| {
            advertised.keys().any(|branch| {
                branch
                    .strip_prefix(stale)
                    .is_some_and(|rest| rest.starts_with('/'))
                    || stale
                        .strip_prefix(branch.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        };
        let deletes: String = local
            .keys()
            .filter(|branch| !advertised.contains_key(*branch) && in_the_way(branch))
            .map(|branch| format!("delete {BRANCH_PREFIX}{branch}\n"))
            .collect();
        let updates: String = advertised
            .iter()
            .filter(|(branch, sha)| local.get(*branch) != Some(sha))
            .map(|(branch, sha)| format!("update {BRANCH_PREFIX}{branch} {sha}\n"))
            .collect();
        // Deleted first, in their own transaction: one transaction cannot free a name and
        // take it as a directory.
        for transaction in [deletes, updates] {
            if !transaction.is_empty() {
                let mut command = git(Some(&self.dir));
                command.args(["update-ref", "--stdin"]);
                program::run(command, transaction.as_bytes())?;
            }
        }
        Ok(())
    }

    /// The branch heads currently in the mirror (no network), sorted by branch name.
    pub fn heads(&self) -> Result<Vec<Head>, GitError> {
        let mut list = git(Some(&self.dir));
        list.args([
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            BRANCH_PREFIX,
        ]);
        let listing = program::run(list, b"").map_err(|failure| {
            failure.into_error(|message| {
                GitError::Other(format!(
                    "could not list branches of the mirror in {}: {message} (check the directory is intact)",
                    self.dir.display(),
                ))
            })
        })?;
        let mut heads: Vec<Head> = String::from_utf8_lossy(&listing)
            .lines()
            .filter_map(|line| {
                let (sha, name) = line.split_once(' ')?;
                Some(Head {
                    branch: name.strip_prefix(BRANCH_PREFIX)?.to_owned(),
                    sha: sha.to_owned(),
                })
            })
            .collect();
        heads.sort_by(|a, b| a.branch.cmp(&b.branch));
        Ok(heads)
    }

    /// The commit object `sha`, which must be a full 40-hex sha.
    fn find_commit(&self, sha: &str) -> Result<program::Object, GitError> {
        let unknown = || GitError::UnknownCommit {
            sha: sha.to_string(),
        };
        if sha.len() != 40 || !sha.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        let object = program::read_object(&self.dir, sha).map_err(|failure| {
            failure.into_error(|message| {
                GitError::Other(format!(
                    "could not read commit {sha} from the mirror in {}: {message} (the mirror may be corrupt; remove it to re-clone)",
                    self.dir.display()
                ))
            })
        })?;
        match object {
            Some(object) if object.kind == "commit" => Ok(object),
            _ => Err(unknown()),
        }
    }

    /// Metadata of one commit (full 40-hex sha, or error GitError::UnknownCommit).
    pub fn commit(&self, sha: &str) -> Result<CommitInfo, GitError> {
        let commit = self.find_commit(sha)?;
        commit_info(
            &commit,
            &self.dir,
            "the mirror may be corrupt; remove it to re-clone",
        )
    }

    /// Writes the tree of commit `sha` into `dest` (created; must be empty or missing):
    /// regular files (mode 0644 or 0755 for executables), symlinks, directories. Submodules
    /// (gitlinks) are skipped. Returns the number of files written.
    ///
    /// Symlinks count as files. Entry names that could escape `dest` (`..`, names with `/`)
    /// are refused, and nothing is ever written through a symlink. File contents are the
    /// bytes stored in the commit: no `.gitattributes` filter or line-ending conversion.
    pub fn materialize(&self, sha: &str, dest: &Path) -> Result<u64, GitError> {
        let commit = self.find_commit(sha)?;
        let tree = commit
            .data
            .strip_prefix(b"tree ")
            .and_then(|rest| rest.get(..40))
            .map(|id| String::from_utf8_lossy(id).into_owned())
            .ok_or_else(|| {
                GitError::Other(format!(
                    "commit {sha} has no readable tree (the mirror in {} may be corrupt; remove it to re-clone)",
                    self.dir.display()
                ))
            })?;
        let created = match fs::read_dir(dest) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(GitError::Other(format!(
                        "{} is not empty: materialize {sha} into an empty or missing directory",
                        dest.display()
                    )));
                }
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(dest).map_err(|e| GitError::io(dest, e))?;
                true
            }
            Err(e) => return Err(GitError::io(dest, e)),
        };
        let written = self.write_tree(&tree, dest, sha);
        if written.is_err() {
            // Leave no half-written tree behind that could be mistaken for a complete one.
            remove_contents(dest, created);
        }
        written
    }

    /// Writes tree `tree` of commit `sha` into the empty directory `dest`.
    ///
    /// Two git processes whatever the size of the tree: `ls-tree` lists every entry, and one
    /// `cat-file --batch` streams every blob straight into its file. `git archive` would
    /// apply `export-ignore`/`export-subst` attributes and turn submodules into empty
    /// directories; a checkout would apply line-ending and smudge filters (Git LFS would go
    /// to the network). Both would change what the commit holds.
    fn write_tree(&self, tree: &str, dest: &Path, sha: &str) -> Result<u64, GitError> {
        let corrupt = |what: &str, failure: Failure| {
            failure.into_error(|message| {
                GitError::Other(format!(
                    "could not read {what} of commit {sha}: {message} (the mirror in {} may be corrupt; remove it to re-clone)",
                    self.dir.display()
                ))
            })
        };
        let mut list = git(Some(&self.dir));
        list.args(["ls-tree", "-r", "-t", "-z", "--full-tree", tree]);
        let listing = program::run(list, b"").map_err(|failure| corrupt("the tree", failure))?;
        let entries = plan(&listing, dest, sha)?;

        let mut cat = git(Some(&self.dir));
        cat.args(["cat-file", "--batch", "--buffer"]);
        let mut running = Running::start(cat).map_err(|failure| corrupt("the files", failure))?;
        let (stdin, stdout) = running.pipes();
        let blobs: Vec<&str> = entries
            .iter()
            .filter(|entry| matches!(entry.kind, EntryKind::File { .. } | EntryKind::Link))
            .map(|entry| entry.id)
            .collect();
        let written = std::thread::scope(|scope| {
            // Asked from a thread: git answers while it reads, and both pipes are bounded.
            scope.spawn(move || {
                let mut stdin = std::io::BufWriter::new(stdin);
                for id in blobs {
                    if writeln!(stdin, "{id}").is_err() {
                        // git stopped reading: it exited, or was stopped below.
                        return;
                    }
                }
                let _ = stdin.flush();
            });
            let written = write_entries(&entries, stdout);
            if written.is_err() {
                // Unblocks the writer above if git is waiting for its stdout to drain.
                running.kill();
            }
            written
        });
        let finished = running.finish();
        let written = written.map_err(|error| match error {
            WriteError::Git(failure) => corrupt("the files", failure),
            WriteError::Missing(path) => GitError::Other(format!(
                "could not read file {} of commit {sha}: the mirror does not have it (the mirror in {} may be corrupt; remove it to re-clone)",
                path.display(),
                self.dir.display()
            )),
            WriteError::File(path, source) => GitError::io(path, source),
        })?;
        finished.map_err(|failure| corrupt("the files", failure))?;
        Ok(written)
    }
}

/// What one entry of a tree becomes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Directory,
    File { executable: bool },
    Link,
}

/// One entry of `git ls-tree -r -t` that is written.
struct Entry<'a> {
    kind: EntryKind,
    id: &'a str,
    path: PathBuf,
}

/// The entries of `git ls-tree -r -t -z` output, each checked to land inside `dest`: every
/// path component is a plain name, and the parent of every entry is a directory of the
/// tree written before it, so that no entry is written through anything but a directory
/// made here.
fn plan<'a>(listing: &'a [u8], dest: &Path, sha: &str) -> Result<Vec<Entry<'a>>, GitError> {
    let malformed = |record: &[u8]| {
        GitError::Other(format!(
            "git ls-tree listed {:?} for commit {sha}, which lastmile does not understand",
            String::from_utf8_lossy(record)
        ))
    };
    let mut directories: HashSet<&[u8]> = HashSet::new();
    let mut entries = Vec::new();
    for record in listing.split(|&byte| byte == 0) {
        if record.is_empty() {
            continue;
        }
        // "<mode> SP <type> SP <id> TAB <path>"
        let tab = record
            .iter()
            .position(|&byte| byte == b'\t')
            .ok_or_else(|| malformed(record))?;
        let (header, path) = (&record[..tab], &record[tab + 1..]);
        let header = std::str::from_utf8(header).map_err(|_| malformed(record))?;
        let mut fields = header.split(' ');
        let (Some(mode), Some(kind), Some(id)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(malformed(record));
        };
        let escapes = path
            .split(|&byte| byte == b'/')
            .any(|name| name.is_empty() || name == b"." || name == b"..");
        let parent = path
            .iter()
            .rposition(|&byte| byte == b'/')
            .map(|slash| &path[..slash]);
        if escapes || parent.is_some_and(|parent| !directories.contains(parent)) {
            return Err(GitError::Other(format!(
                "commit {sha} has a tree entry named {:?} that would escape the destination; refusing to materialize it",
                String::from_utf8_lossy(path)
            )));
        }
        let kind = match (kind, mode) {
            ("tree", _) => {
                directories.insert(path);
                EntryKind::Directory
            }
            ("blob", "120000") => EntryKind::Link,
            ("blob", mode) => EntryKind::File {
                executable: mode == "100755",
            },
            // Submodules are not part of this repository's content.
            ("commit", _) => continue,
            _ => return Err(malformed(record)),
        };
        entries.push(Entry {
            kind,
            id,
            path: dest.join(std::ffi::OsStr::from_bytes(path)),
        });
    }
    Ok(entries)
}

/// Why writing the entries stopped.
enum WriteError {
    Git(Failure),
    Missing(PathBuf),
    File(PathBuf, std::io::Error),
}

/// Creates `entries` in order, reading each blob's content from `cat-file --batch` output.
fn write_entries(
    entries: &[Entry<'_>],
    stdout: std::process::ChildStdout,
) -> Result<u64, WriteError> {
    let mut objects = BufReader::with_capacity(1 << 16, stdout);
    let mut written = 0;
    let mut header = Vec::new();
    for entry in entries {
        let path = &entry.path;
        let file_error = |source| WriteError::File(path.clone(), source);
        let executable = match entry.kind {
            EntryKind::Directory => {
                fs::create_dir(path).map_err(file_error)?;
                continue;
            }
            EntryKind::File { executable } => Some(executable),
            EntryKind::Link => None,
        };
        // "<id> blob <size>\n<content>\n", or "<id> missing\n".
        header.clear();
        objects
            .read_until(b'\n', &mut header)
            .map_err(|error| WriteError::Git(Failure::Io(error)))?;
        let header_text = String::from_utf8_lossy(&header);
        let mut fields = header_text.trim_end().split(' ');
        let size = match (fields.next(), fields.next(), fields.next()) {
            (Some(_), Some("blob"), Some(size)) => size
                .parse::<u64>()
                .map_err(|_| WriteError::Git(program::unexpected(&header_text)))?,
            (Some(_), Some("missing"), None) => return Err(WriteError::Missing(path.clone())),
            _ => return Err(WriteError::Git(program::unexpected(&header_text))),
        };
        let mut content = (&mut objects).take(size);
        if let Some(executable) = executable {
            let mode = if executable { 0o755 } else { 0o644 };
            // create_new refuses to follow a symlink planted by an earlier entry.
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)
                .map_err(file_error)?;
            let copied = std::io::copy(&mut content, &mut file).map_err(file_error)?;
            if copied != size {
                return Err(WriteError::Git(program::unexpected(&header_text)));
            }
            // The umask may have narrowed the mode given at creation.
            fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(file_error)?;
        } else {
            let mut target = Vec::new();
            content
                .read_to_end(&mut target)
                .map_err(|error| WriteError::Git(Failure::Io(error)))?;
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), path)
                .map_err(file_error)?;
        }
        // The newline after the content.
        let mut newline = [0];
        objects
            .read_exact(&mut newline)
            .map_err(|error| WriteError::Git(Failure::Io(error)))?;
        written += 1;
    }
    Ok(written)
}

/// Removes what is in `dir`, and `dir` itself when this call `created` it. Best effort:
/// it runs after a failure, whose error is what the caller needs.
fn remove_contents(dir: &Path, created: bool) {
    if created {
        let _ = fs::remove_dir_all(dir);
    } else if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = match entry.file_type() {
                Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
                _ => fs::remove_file(&path),
            };
        }
    }
}

fn first_line(message: &str) -> String {
    message
        .trim_start()
        .lines()
        .next()
        .unwrap_or("")
        .trim_end()
        .to_string()
}

/// `url` with any password replaced by `***`, for messages and logs
/// (`https://bot:***@git.example.com/app.git`).
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_string(),
    };
    format!("{}{}@{}", &url[..scheme_end + 3], user, &rest[at + 1..])
}

/// `text` without the password of `url`, in case an error message quotes the URL.
fn scrub(text: &str, url: &str) -> String {
    let redacted = redact(url);
    if redacted == url {
        return text.to_string();
    }
    let text = text.replace(url, &redacted);
    // The password may also appear on its own (percent-decoded or not); blank it everywhere.
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .unwrap_or("");
    if password.is_empty() {
        return text;
    }
    let text = text.replace(password, "***");
    match percent_decoded(password) {
        Some(decoded) if !decoded.is_empty() && decoded != password => {
            text.replace(&decoded, "***")
        }
        _ => text,
    }
}

/// `text` with its `%XX` escapes decoded, or `None` when that is not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 3)
            .filter(|_| bytes[index] == b'%')
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

/// Sha, committer time, author and subject of `commit` (a raw commit object), read from
/// the repository in `dir`; `remedy` says what to do when its header cannot be read.
pub(crate) fn commit_info(
    commit: &program::Object,
    dir: &Path,
    remedy: &str,
) -> Result<CommitInfo, GitError> {
    let sha = commit.id.clone();
    let corrupt = |what: &str| {
        GitError::Other(format!(
            "commit {sha} in {} has an unreadable {what} ({remedy})",
            dir.display(),
        ))
    };
    let text = String::from_utf8_lossy(&commit.data);
    let (headers, message) = text.split_once("\n\n").unwrap_or((&text, ""));
    let header = |name: &str| {
        headers
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
    };
    let author = header("author")
        .and_then(signature)
        .ok_or_else(|| corrupt("author"))?;
    let committer = header("committer")
        .and_then(signature)
        .ok_or_else(|| corrupt("committer"))?;
    let seconds: i64 = committer
        .time
        .split_whitespace()
        .next()
        .and_then(|seconds| seconds.parse().ok())
        .ok_or_else(|| corrupt("committer time"))?;
    Ok(CommitInfo {
        sha: sha.clone(),
        time_ms: seconds.saturating_mul(1000),
        author: format!("{} <{}>", author.name, author.email),
        subject: first_line(message),
    })
}

/// The parts of an `author` or `committer` header: `Name <email> 1700000000 +0100`.
struct Signature<'a> {
    name: &'a str,
    email: &'a str,
    time: &'a str,
}

fn signature(value: &str) -> Option<Signature<'_>> {
    let (name, rest) = value.split_once('<')?;
    let (email, time) = rest.split_once('>')?;
    Some(Signature {
        name: name.trim(),
        email: email.trim(),
        time,
    })
}

#[cfg(test)]
mod tests {
    use super::{redact, scrub};

    #[test]
    fn messages_lose_the_password() {
        let url = "https://bot:tok3n@git.example.com/a.git";
        assert_eq!(
            scrub(
                "cannot reach https://bot:tok3n@git.example.com/a.git (tok3n)",
                url
            ),
            "cannot reach https://bot:***@git.example.com/a.git (***)"
        );
        assert_eq!(scrub("plain", "/srv/a"), "plain");
        assert_eq!(
            scrub(
                "Authentication failed for p@ss/w0rd",
                "https://bot:p%40ss%2Fw0rd@git.example.com/a.git"
            ),
            "Authentication failed for ***"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("https://bot:tok3n@git.example.com/a/b.git"),
            "https://bot:***@git.example.com/a/b.git"
        );
        assert_eq!(
            redact("https://git.example.com/a@b.git"),
            "https://git.example.com/a@b.git"
        );
        assert_eq!(redact("https://bot@h/x"), "https://bot@h/x");
        assert_eq!(redact("/srv/git/app"), "/srv/git/app");
        assert_eq!(redact("git@github.com:a/b.git"), "git@github.com:a/b.git");
    }
}
