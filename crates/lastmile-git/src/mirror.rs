//! A bare mirror of one remote repository.

use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use gix::bstr::{BStr, ByteSlice as _};
use gix::object::tree::EntryKind;
use gix::remote::Direction;

use crate::error::{GitError, chain};

/// Every branch of the remote lands on the branch of the same name in the mirror.
const BRANCH_REFSPEC: &str = "+refs/heads/*:refs/heads/*";
const BRANCH_PREFIX: &str = "refs/heads/";

/// A bare mirror of one remote repository, kept under `dir`.
pub struct Mirror {
    repo: gix::ThreadSafeRepository,
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
    pub fn open_or_clone(url: &str, dir: &Path) -> Result<Mirror, GitError> {
        let non_empty = match fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_some(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(GitError::io(dir, e)),
        };
        let repo = if non_empty {
            gix::open(dir).map_err(|e| {
                GitError::Other(format!(
                    "{} is not empty and is not a git mirror ({}): remove it so that {} can be cloned there",
                    dir.display(),
                    chain(&e),
                    redact(url)
                ))
            })?
        } else {
            Self::clone_bare(url, dir)?
        };
        Ok(Mirror {
            repo: repo.into_sync(),
            url: url.to_string(),
            dir: dir.to_path_buf(),
            fetch_lock: Mutex::new(()),
        })
    }

    fn clone_bare(url: &str, dir: &Path) -> Result<gix::Repository, GitError> {
        let clone_err = |message: String| GitError::Clone {
            url: redact(url),
            message: scrub(&message, url),
        };
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(|e| GitError::io(parent, e))?;
        }
        let mut prepare = gix::prepare_clone_bare(url, dir)
            .map_err(|e| clone_err(chain(&e)))?
            .configure_remote(|remote| {
                // Tags are not deployed; fetching them only costs time.
                remote
                    .with_fetch_tags(gix::remote::fetch::Tags::None)
                    .with_refspecs([BRANCH_REFSPEC], Direction::Fetch)
            });
        let (repo, _outcome) = prepare
            .fetch_only(gix::progress::Discard, &AtomicBool::new(false))
            .map_err(|e| clone_err(chain(&e)))?;
        Ok(repo)
    }

    /// The URL this mirror fetches from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fetches every branch (`+refs/heads/*:refs/heads/*`, pruning nothing) and returns
    /// the branch heads the remote advertised, sorted by branch name.
    pub fn fetch(&self) -> Result<Vec<Head>, GitError> {
        let fetch_err = |message: String| GitError::Fetch {
            url: redact(&self.url),
            message: scrub(&message, &self.url),
        };
        // A poisoned lock only means another fetch panicked; the refs on disk are still valid.
        let _serial = self
            .fetch_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let repo = self.repo.to_thread_local();
        let remote = repo
            .remote_at(self.url.as_str())
            .map_err(|e| fetch_err(chain(&e)))?
            .with_fetch_tags(gix::remote::fetch::Tags::None)
            .with_refspecs([BRANCH_REFSPEC], Direction::Fetch)
            .map_err(|e| fetch_err(chain(&e)))?;
        let outcome = remote
            .connect(Direction::Fetch)
            .map_err(|e| fetch_err(chain(&e)))?
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| fetch_err(chain(&e)))?
            .receive(gix::progress::Discard, &AtomicBool::new(false))
            .map_err(|e| fetch_err(chain(&e)))?;
        let mut heads: Vec<Head> = outcome
            .ref_map
            .remote_refs
            .iter()
            .filter_map(|r| {
                let (name, target, _peeled) = r.unpack();
                let branch = name.strip_prefix(BRANCH_PREFIX.as_bytes())?;
                Some(Head {
                    branch: branch.to_str_lossy().into_owned(),
                    sha: target?.to_hex().to_string(),
                })
            })
            .collect();
        heads.sort_by(|a, b| a.branch.cmp(&b.branch));
        heads.dedup_by(|a, b| a.branch == b.branch);
        Ok(heads)
    }

    /// The branch heads currently in the mirror (no network), sorted by branch name.
    pub fn heads(&self) -> Result<Vec<Head>, GitError> {
        let repo = self.repo.to_thread_local();
        let other = |e: &(dyn std::error::Error + 'static)| {
            GitError::Other(format!(
                "could not list branches of the mirror in {}: {} (check the directory is intact)",
                self.dir.display(),
                chain(e)
            ))
        };
        let platform = repo.references().map_err(|e| other(&e))?;
        let mut heads = Vec::new();
        for reference in platform.local_branches().map_err(|e| other(&e))? {
            let mut reference = reference.map_err(|e| other(&e))?;
            let branch = reference.name().shorten().to_str_lossy().into_owned();
            let id = reference.peel_to_id().map_err(|e| other(&e))?;
            heads.push(Head {
                branch,
                sha: id.to_hex().to_string(),
            });
        }
        heads.sort_by(|a, b| a.branch.cmp(&b.branch));
        Ok(heads)
    }

    fn find_commit<'r>(
        &self,
        repo: &'r gix::Repository,
        sha: &str,
    ) -> Result<gix::Commit<'r>, GitError> {
        let unknown = || GitError::UnknownCommit {
            sha: sha.to_string(),
        };
        if sha.len() != 40 {
            return Err(unknown());
        }
        let id = gix::ObjectId::from_hex(sha.as_bytes()).map_err(|_| unknown())?;
        repo.find_commit(id).map_err(|_| unknown())
    }

    /// Metadata of one commit (full 40-hex sha, or error GitError::UnknownCommit).
    pub fn commit(&self, sha: &str) -> Result<CommitInfo, GitError> {
        let repo = self.repo.to_thread_local();
        let commit = self.find_commit(&repo, sha)?;
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
    /// are refused, and nothing is ever written through a symlink.
    pub fn materialize(&self, sha: &str, dest: &Path) -> Result<u64, GitError> {
        let repo = self.repo.to_thread_local();
        let commit = self.find_commit(&repo, sha)?;
        let tree_id = commit.tree_id().map_err(|e| {
            GitError::Other(format!(
                "commit {sha} has no readable tree: {} (the mirror in {} may be corrupt; remove it to re-clone)",
                chain(&e),
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
        let mut written = 0;
        if let Err(e) = write_tree(&repo, tree_id.detach(), dest, sha, &mut written) {
            // Leave no half-written tree behind that could be mistaken for a complete one.
            // Cleanup is best effort: the original error is what the caller needs.
            if created {
                let _ = fs::remove_dir_all(dest);
            } else if let Ok(entries) = fs::read_dir(dest) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let _ = match entry.file_type() {
                        Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
                        _ => fs::remove_file(&path),
                    };
                }
            }
            return Err(e);
        }
        Ok(written)
    }
}

fn first_line(message: &BStr) -> String {
    let text = message.to_str_lossy();
    text.trim_start()
        .lines()
        .next()
        .unwrap_or("")
        .trim_end()
        .to_string()
}

fn write_tree(
    repo: &gix::Repository,
    tree_id: gix::ObjectId,
    dir: &Path,
    sha: &str,
    written: &mut u64,
) -> Result<(), GitError> {
    let bad_object = |what: String, e: &(dyn std::error::Error + 'static)| {
        GitError::Other(format!(
            "could not read {what} of commit {sha}: {} (the mirror may be corrupt; remove it to re-clone)",
            chain(e)
        ))
    };
    let tree = repo
        .find_tree(tree_id)
        .map_err(|e| bad_object(format!("tree {tree_id}"), &e))?;
    let decoded = tree
        .decode()
        .map_err(|e| bad_object(format!("tree {tree_id}"), &e))?;
    for entry in &decoded.entries {
        let name = entry.filename;
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            return Err(GitError::Other(format!(
                "commit {sha} has a tree entry named {name:?} that would escape the destination; refusing to materialize it"
            )));
        }
        let path = dir.join(std::ffi::OsStr::from_bytes(name));
        match entry.mode.kind() {
            EntryKind::Tree => {
                fs::create_dir(&path).map_err(|e| GitError::io(&path, e))?;
                write_tree(repo, entry.oid.to_owned(), &path, sha, written)?;
            }
            kind @ (EntryKind::Blob | EntryKind::BlobExecutable) => {
                let blob = repo
                    .find_blob(entry.oid)
                    .map_err(|e| bad_object(format!("file {}", path.display()), &e))?;
                let mode = if kind == EntryKind::BlobExecutable {
                    0o755
                } else {
                    0o644
                };
                // create_new refuses to follow a symlink planted by an earlier entry.
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&path)
                    .map_err(|e| GitError::io(&path, e))?;
                file.write_all(&blob.data)
                    .map_err(|e| GitError::io(&path, e))?;
                // The umask may have narrowed the mode given at creation.
                fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .map_err(|e| GitError::io(&path, e))?;
                *written += 1;
            }
            EntryKind::Link => {
                let blob = repo
                    .find_blob(entry.oid)
                    .map_err(|e| bad_object(format!("symlink {}", path.display()), &e))?;
                let target = std::ffi::OsStr::from_bytes(&blob.data);
                std::os::unix::fs::symlink(target, &path).map_err(|e| GitError::io(&path, e))?;
                *written += 1;
            }
            // Submodules are not part of this repository's content.
            EntryKind::Commit => {}
        }
    }
    Ok(())
}

/// `url` with any password replaced by `***`, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
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
        text
    } else {
        text.replace(password, "***")
    }
}

/// Sha, committer time, author and subject of `commit`, read from the repository in `dir`;
/// `remedy` says what to do when its header cannot be read.
pub(crate) fn commit_info(
    commit: &gix::Commit<'_>,
    dir: &Path,
    remedy: &str,
) -> Result<CommitInfo, GitError> {
    let sha = commit.id().to_hex().to_string();
    let corrupt = |what: &str, e: &(dyn std::error::Error + 'static)| {
        GitError::Other(format!(
            "commit {sha} in {} has an unreadable {what}: {} ({remedy})",
            dir.display(),
            chain(e)
        ))
    };
    let decoded = commit.decode().map_err(|e| corrupt("header", &e))?;
    let author = decoded.author().map_err(|e| corrupt("author", &e))?.trim();
    let committer = decoded.committer().map_err(|e| corrupt("committer", &e))?;
    let time = committer
        .time()
        .map_err(|e| corrupt("committer time", &e))?;
    let subject = first_line(decoded.message);
    Ok(CommitInfo {
        sha: sha.clone(),
        time_ms: time.seconds.saturating_mul(1000),
        author: format!("{} <{}>", author.name, author.email),
        subject,
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
