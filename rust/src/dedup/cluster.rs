//! Union-find whose roots are the smallest member of their set, so that a
//! document's cluster id is the smallest index in its cluster, whatever the
//! order in which edges arrive.

pub struct UnionFind {
    parent: Vec<u64>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u64).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The root of `x`, halving the path on the way (amortized near O(1)).
    pub fn find(&mut self, mut x: u64) -> u64 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            let gp = self.parent[p as usize];
            self.parent[x as usize] = gp;
            x = gp;
        }
        x
    }

    /// Join the sets of `x` and `y`; the smaller root becomes the root.
    pub fn union(&mut self, x: u64, y: u64) {
        let (rx, ry) = (self.find(x), self.find(y));
        if rx < ry {
            self.parent[ry as usize] = rx;
        } else if ry < rx {
            self.parent[rx as usize] = ry;
        }
    }

    /// Each element's root (= smallest member of its set).
    pub fn labels(&mut self) -> Vec<u64> {
        (0..self.parent.len() as u64)
            .map(|i| self.find(i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_smallest_members() {
        let mut uf = UnionFind::new(7);
        uf.union(5, 3);
        uf.union(6, 5);
        uf.union(4, 1);
        uf.union(3, 4);
        assert_eq!(uf.labels(), vec![0, 1, 2, 1, 1, 1, 1]);
    }

    #[test]
    fn order_does_not_matter() {
        let edges = [(9u64, 2u64), (2, 7), (4, 5), (5, 9), (0, 8)];
        let mut a = UnionFind::new(10);
        let mut b = UnionFind::new(10);
        for &(x, y) in &edges {
            a.union(x, y);
        }
        for &(x, y) in edges.iter().rev() {
            b.union(y, x);
        }
        assert_eq!(a.labels(), b.labels());
        assert_eq!(a.labels()[9], 2);
    }
}
