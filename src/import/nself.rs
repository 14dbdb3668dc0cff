//! nself projects (seed 003).

use std::path::Path;

use super::{Imported, Reader};
use crate::error::Result;

/// Import the nself project at `source`.
pub fn import(_reader: &dyn Reader, _source: &Path) -> Result<Imported> {
    Err(crate::error::Error::usage("not yet"))
}
