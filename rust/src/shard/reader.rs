//! Opens one shard and checks that its `.idx` and `.bin` agree.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::format::{DType, Index};
use crate::error::{Error, Result};

pub struct ShardReader {
    pub bin: PathBuf,
    pub index: Index,
    file: File,
}

impl ShardReader {
    /// Open `{prefix}.idx` + `{prefix}.bin`; an error names the bad file.
    pub fn open(prefix: impl AsRef<Path>) -> Result<ShardReader> {
        let prefix = prefix.as_ref().as_os_str().to_owned();
        let with = |ext: &str| {
            let mut p = prefix.clone();
            p.push(ext);
            PathBuf::from(p)
        };
        let (idx, bin) = (with(".idx"), with(".bin"));
        let bytes = std::fs::read(&idx).map_err(|e| Error::io(&idx, e))?;
        let index = Index::parse(&bytes, &idx.display().to_string())?;
        let file = File::open(&bin).map_err(|e| Error::io(&bin, e))?;
        let len = file.metadata().map_err(|e| Error::io(&bin, e))?.len();
        if len != index.data_bytes() {
            return Err(Error::format(
                bin.display().to_string(),
                format!(
                    "size {len} bytes, but {} says {} bytes of tokens",
                    idx.display(),
                    index.data_bytes()
                ),
            ));
        }
        Ok(ShardReader { bin, index, file })
    }

    pub fn len(&self) -> usize {
        self.index.sizes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.sizes.is_empty()
    }

    /// The tokens of sequence `i` (one document, EOS included).
    pub fn document(&mut self, i: usize) -> Result<Vec<u32>> {
        let (n, at) = match (self.index.sizes.get(i), self.index.pointers.get(i)) {
            (Some(&n), Some(&at)) => (n as usize, at as u64),
            _ => {
                return Err(Error::invalid(format!(
                    "document {i} out of range ({} documents)",
                    self.len()
                )))
            }
        };
        let item = self.index.dtype.itemsize();
        let mut buf = vec![0u8; n * item];
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| Error::io(&self.bin, e))?;
        match self.index.dtype {
            DType::U16 => Ok(buf
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
                .collect()),
            DType::I32 => Ok(buf
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as u32)
                .collect()),
            other => Err(Error::format(
                self.bin.display().to_string(),
                format!("token dtype {} is not uint16 or int32", other.name()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_size_mismatch_names_the_bin() {
        let dir = std::env::temp_dir().join(format!("fastllm-shard-rd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let idx = Index::from_sizes(DType::U16, vec![2, 3]);
        std::fs::write(dir.join("a.idx"), idx.to_bytes()).unwrap();
        std::fs::write(dir.join("a.bin"), [0u8; 9]).unwrap();
        let e = ShardReader::open(dir.join("a")).err().unwrap().to_string();
        assert!(e.contains("a.bin: size 9 bytes"), "{e}");
        std::fs::write(dir.join("a.bin"), [1u8, 0, 2, 0, 3, 0, 4, 0, 5, 0]).unwrap();
        let mut r = ShardReader::open(dir.join("a")).unwrap();
        assert_eq!(r.document(1).unwrap(), vec![3, 4, 5]);
        assert!(r.document(2).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
