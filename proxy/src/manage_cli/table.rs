//! Boxed text tables in the style of Python's `prettytable` defaults, which
//! `glance-cache-manage` prints: `+---+` rules, one space of padding, each
//! column as wide as its widest cell or header, headers aligned like their
//! column.

/// How a column's cells (and its header) are aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Align {
    /// `prettytable`'s default: centred, extra space like Python's
    /// `str.center`.
    Center,
    /// Right-aligned (numbers).
    Right,
}

/// A table being built; [`Table::render`] gives its text.
#[derive(Debug)]
pub(crate) struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub(crate) fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            columns: columns
                .iter()
                .map(|(name, align)| ((*name).to_owned(), *align))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells are empty, extra ones ignored).
    pub(crate) fn add_row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    /// The table's lines, without a final newline.
    pub(crate) fn render(&self) -> String {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                self.rows
                    .iter()
                    .map(|row| width(&row[i]))
                    .chain([width(name)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let rule = widths.iter().fold(String::from("+"), |mut s, w| {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
            s
        });
        let line = |cells: &mut dyn Iterator<Item = &String>| {
            let mut s = String::from("|");
            for ((cell, w), (_, align)) in cells.zip(&widths).zip(&self.columns) {
                s.push(' ');
                s.push_str(&justify(cell, *w, *align));
                s.push_str(" |");
            }
            s
        };
        let mut out = vec![rule.clone()];
        out.push(line(&mut self.columns.iter().map(|(name, _)| name)));
        out.push(rule.clone());
        for row in &self.rows {
            out.push(line(&mut row.iter()));
        }
        out.push(rule);
        out.join("\n")
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// `text` padded to `w` like `prettytable`'s `_justify`.
fn justify(text: &str, w: usize, align: Align) -> String {
    let len = width(text);
    let excess = w.saturating_sub(len);
    let (left, right) = match align {
        Align::Right => (excess, 0),
        // Odd excess: the extra space goes right for odd-length text and
        // left for even-length text (Python's str.center).
        Align::Center if !excess.is_multiple_of(2) && len.is_multiple_of(2) => {
            (excess / 2 + 1, excess / 2)
        }
        Align::Center if !excess.is_multiple_of(2) => (excess / 2, excess / 2 + 1),
        Align::Center => (excess / 2, excess / 2),
    };
    format!("{}{text}{}", " ".repeat(left), " ".repeat(right))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed by prettytable 3.18 (Glance's pinned version) with
    /// `align['Size'] = align['Hits'] = 'r'`, as glance-cache-manage sets.
    const CACHED: &str = "\
+--------------------------------------+---------------------+----------------------------+---------+------+
|                  ID                  | Last Accessed (UTC) |    Last Modified (UTC)     |    Size | Hits |
+--------------------------------------+---------------------+----------------------------+---------+------+
| e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2c |         N/A         | 2026-11-24T08:19:54.538803 | 1048576 |    0 |
| e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2d | 2026-11-24T08:19:54 | 2026-11-24T08:19:54.500000 |       5 |   12 |
+--------------------------------------+---------------------+----------------------------+---------+------+";

    const QUEUED: &str = "\
+--------------------------------------+
|                  ID                  |
+--------------------------------------+
| a7998f07-4bca-4460-9f11-a1a70ddca252 |
+--------------------------------------+";

    #[test]
    fn renders_like_prettytable() {
        let mut t = Table::new(&[
            ("ID", Align::Center),
            ("Last Accessed (UTC)", Align::Center),
            ("Last Modified (UTC)", Align::Center),
            ("Size", Align::Right),
            ("Hits", Align::Right),
        ]);
        t.add_row(
            [
                "e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2c",
                "N/A",
                "2026-11-24T08:19:54.538803",
                "1048576",
                "0",
            ]
            .map(String::from)
            .to_vec(),
        );
        t.add_row(
            [
                "e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2d",
                "2026-11-24T08:19:54",
                "2026-11-24T08:19:54.500000",
                "5",
                "12",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(t.render(), CACHED);

        let mut q = Table::new(&[("ID", Align::Center)]);
        q.add_row(vec!["a7998f07-4bca-4460-9f11-a1a70ddca252".into()]);
        assert_eq!(q.render(), QUEUED);
    }

    #[test]
    fn centring_matches_python_str_center() {
        // "abc".center(6) == " abc  ", "ab".center(5) == "  ab ".
        assert_eq!(justify("abc", 6, Align::Center), " abc  ");
        assert_eq!(justify("ab", 5, Align::Center), "  ab ");
        assert_eq!(justify("ab", 6, Align::Center), "  ab  ");
        assert_eq!(justify("ab", 5, Align::Right), "   ab");
        assert_eq!(justify("toolong", 3, Align::Center), "toolong");
    }

    #[test]
    fn short_rows_are_padded() {
        let mut t = Table::new(&[("A", Align::Center), ("B", Align::Right)]);
        t.add_row(vec!["x".into()]);
        assert_eq!(
            t.render(),
            "+---+---+\n| A | B |\n+---+---+\n| x |   |\n+---+---+"
        );
    }
}
