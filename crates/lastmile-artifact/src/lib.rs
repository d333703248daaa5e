//! Content-addressed artifacts: the blob store that files immutable blobs
//! under their blake3 id, and reproducible packing, so the same files always
//! pack to the same id, and unpacking that checks the content against it.
//!
//! It knows nothing of specs, runs or databases: the pipeline packs what a
//! run built into it, and a host unpacks a release from it. A host whose
//! store is not the controller's receives an artifact's blob through
//! [`BlobStore::import`], which keeps it only if its content hashes to its id.
//!
//! ```no_run
//! use std::path::Path;
//!
//! use lastmile_artifact::{BlobStore, pack, unpack};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let blobs = BlobStore::open(Path::new(".lastmile"))?;
//! let packed = pack(Path::new("."), &["dist".to_owned()], &blobs)?;
//! let files = unpack(&blobs, &packed.id, Path::new("/tmp/release"))?;
//! assert_eq!(files, packed.files);
//! # Ok(())
//! # }
//! ```

mod blob_store;
mod error;
mod import;
mod package;

pub use blob_store::{BlobStore, PendingBlob};
pub use error::BlobError;
pub use import::{Import, ImportError};
pub use package::{
    EntryKind, PackageError, Packed, Selected, SelectionError, pack, select, unpack,
};
