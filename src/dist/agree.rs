//! Agreement at start: every rank must train on the same data with the same settings, or
//! the ranks would silently add gradients of different problems.

use super::{Collective, DistError};
use crate::data::Dataset;
use std::io::Read;
use std::path::Path;

/// What one rank believes about the run, as named 64-bit fingerprints: data files, data
/// sets, flags, and the CPU features that pick the matrix-product kernels.
///
/// [`Fingerprint::agree`] compares them across ranks. A fingerprint is FNV-1a (64 bits):
/// it tells files and values apart, which is all that is asked of it here; it is no
/// protection against someone crafting a collision.
///
/// ```
/// use backprop::dist::{Fingerprint, Single};
/// let mut f = Fingerprint::new();
/// f.value("--lr", "0.5").value("--batch", "64");
/// f.dataset("digits", &backprop::data::digits::load());
/// assert_eq!(f.items().len(), 3);
/// f.agree(&Single).unwrap(); // one rank always agrees with itself
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    items: Vec<(String, u64)>,
}

/// FNV-1a, 64 bits.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl Fingerprint {
    /// No items yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The items, in the order added.
    pub fn items(&self) -> &[(String, u64)] {
        &self.items
    }

    /// Adds `name` (a flag, say) with its value as given.
    pub fn value(&mut self, name: &str, value: &str) -> &mut Self {
        let mut h = Fnv::new();
        h.write(value.as_bytes());
        self.items.push((name.to_string(), h.0));
        self
    }

    /// Adds the contents of the file at `path`, named by its path.
    ///
    /// # Errors
    /// [`DistError::Io`] naming the file if it cannot be read.
    pub fn file(&mut self, path: &Path) -> Result<&mut Self, DistError> {
        let io = |source| DistError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let (mut h, mut buf) = (Fnv::new(), vec![0u8; 1 << 16]);
        loop {
            let got = file.read(&mut buf).map_err(io)?;
            if got == 0 {
                break;
            }
            h.write(&buf[..got]);
        }
        self.items
            .push((format!("data file {}", path.display()), h.0));
        Ok(self)
    }

    /// Adds a data set as loaded (inputs, labels, classes), named `name`: for built-in and
    /// synthetic sets, or data after scaling.
    pub fn dataset(&mut self, name: &str, data: &Dataset) -> &mut Self {
        let mut h = Fnv::new();
        h.write(&(data.features as u64).to_le_bytes());
        h.write(&(data.classes as u64).to_le_bytes());
        for x in &data.inputs {
            h.write(&x.to_bits().to_le_bytes());
        }
        for y in &data.labels {
            h.write(&y.to_le_bytes());
        }
        self.items.push((format!("data set {name}"), h.0));
        self
    }

    /// Adds the CPU features that decide which matrix-product kernels run (AVX-512, AVX2,
    /// FMA): machines that pick different kernels round differently, so their ranks would
    /// not give the bytes one process gives.
    pub fn cpu(&mut self) -> &mut Self {
        self.value("the CPU features (AVX-512, AVX2, FMA)", &cpu_features())
    }

    /// Compares every rank's items with rank 0's, on every rank (so all of them stop
    /// together, with the same message).
    ///
    /// # Errors
    /// [`DistError::Disagreement`] naming the first rank that differs from rank 0 and the
    /// items it differs in; [`DistError::Lost`] or [`DistError::Protocol`] from `comm`.
    pub fn agree(&self, comm: &impl Collective) -> Result<(), DistError> {
        let size = comm.size();
        let mut counts = vec![0u64; size];
        comm.all_gather_u64(&[self.items.len() as u64], &mut counts)?;
        if let Some(r) = counts.iter().position(|&c| c != counts[0]) {
            return Err(DistError::Disagreement {
                rank: r,
                items: format!(
                    "the number of things checked ({} against {})",
                    counts[r], counts[0]
                ),
            });
        }
        // Each item also carries a fingerprint of its name, so that two ranks checking
        // different things in the same number are told apart.
        let mine: Vec<u64> = (self.items.iter())
            .flat_map(|(name, value)| {
                let mut h = Fnv::new();
                h.write(name.as_bytes());
                [h.0, *value]
            })
            .collect();
        let k = mine.len();
        let mut all = vec![0u64; k * size];
        comm.all_gather_u64(&mine, &mut all)?;
        let first = &all[..k];
        for (r, theirs) in all.chunks_exact(k.max(1)).enumerate().skip(1) {
            let differ: Vec<&str> = (self.items.iter().enumerate())
                .filter(|(i, _)| theirs[2 * i..2 * i + 2] != first[2 * i..2 * i + 2])
                .map(|(_, (name, _))| name.as_str())
                .collect();
            if !differ.is_empty() {
                return Err(DistError::Disagreement {
                    rank: r,
                    items: differ.join(", "),
                });
            }
        }
        Ok(())
    }
}

/// The x86 features that change which kernels `gemm` runs, as a short string.
fn cpu_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let f = [
            ("avx512f", std::is_x86_feature_detected!("avx512f")),
            ("avx2", std::is_x86_feature_detected!("avx2")),
            ("fma", std::is_x86_feature_detected!("fma")),
        ];
        let on: Vec<&str> = f.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
        on.join(",")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::LocalGroup;

    #[test]
    fn ranks_that_differ_are_named_with_what_differs() {
        let ends = LocalGroup::new(3);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (ends.into_iter())
                .map(|end| {
                    s.spawn(move || {
                        let mut f = Fingerprint::new();
                        f.value("--lr", "0.5");
                        // Rank 2 was given another batch size.
                        f.value("--batch", if end.rank() == 2 { "32" } else { "64" });
                        f.agree(&end).map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Every rank stops, with the same message.
        for r in &results {
            assert_eq!(
                r.as_ref().unwrap_err(),
                "rank 2 disagrees with rank 0 on --batch: every rank must read the same data with the same flags"
            );
        }
    }

    #[test]
    fn same_items_agree_and_fingerprints_tell_values_apart() {
        let ends = LocalGroup::new(2);
        std::thread::scope(|s| {
            for end in ends {
                s.spawn(move || {
                    let mut f = Fingerprint::new();
                    f.value("--lr", "0.5").cpu();
                    f.agree(&end).unwrap();
                });
            }
        });
        let (mut a, mut b) = (Fingerprint::new(), Fingerprint::new());
        a.value("x", "0.5");
        b.value("x", "0.50");
        assert_ne!(a.items()[0].1, b.items()[0].1);
        // FNV-1a of the empty string is its offset basis.
        assert_eq!(
            Fingerprint::new().value("e", "").items()[0].1,
            0xcbf2_9ce4_8422_2325
        );
    }

    #[test]
    fn a_file_is_named_by_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        std::fs::write(&path, "1,2\n").unwrap();
        let mut f = Fingerprint::new();
        f.file(&path).unwrap();
        assert!(f.items()[0].0.ends_with("d.csv"));
        let mut g = Fingerprint::new();
        g.value("same bytes", "1,2\n");
        assert_eq!(f.items()[0].1, g.items()[0].1);
        let missing = dir.path().join("none.csv");
        let err = Fingerprint::new().file(&missing).unwrap_err().to_string();
        assert!(err.starts_with(&missing.display().to_string()), "{err}");
    }
}
