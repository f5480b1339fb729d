//! Maps key paths (`routes[2].to[0]`, `subscribers.erp.url`) to their line, so that
//! errors found after deserialisation (unknown subscriber, bad URL) still point into the file.
//!
//! serde_yaml keeps no positions once a value is deserialised, so this walks the same text with
//! yaml-rust2's event parser, which reports a marker for every node.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// The (1-based) line of every node, by path.
pub struct Locations {
    positions: HashMap<String, usize>,
}

impl Locations {
    /// Indexes `text`; a text that does not parse yields an empty index.
    pub fn of(text: &str) -> Locations {
        let mut walker = Walker {
            stack: Vec::new(),
            positions: HashMap::new(),
        };
        let mut parser = Parser::new_from_str(text);
        // A syntax error was already reported by the YAML deserialiser; positions are best effort.
        let _ = parser.load(&mut walker, false);
        Locations {
            positions: walker.positions,
        }
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(position) = self.positions.get(path) {
                return Some(*position);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, index: usize },
}

struct Walker {
    stack: Vec<Frame>,
    positions: HashMap<String, usize>,
}

impl Walker {
    /// The path of the value about to be read, if the current frame expects a value.
    fn value_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Mapping { key: None, .. }) => None,
            Some(Frame::Mapping {
                path,
                key: Some(key),
            }) => Some(join(path, key)),
            Some(Frame::Sequence { path, index }) => Some(format!("{path}[{index}]")),
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        self.positions.entry(path.to_owned()).or_insert(mark.line());
    }

    /// Called after a complete value: the enclosing container moves on.
    fn advance(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Mapping { key, .. }) => *key = None,
            Some(Frame::Sequence { index, .. }) => *index += 1,
            None => {}
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => {
                if let Some(Frame::Mapping {
                    path,
                    key: key @ None,
                }) = self.stack.last_mut()
                {
                    let full = join(path, &text);
                    *key = Some(text);
                    self.record(&full, mark);
                } else if let Some(path) = self.value_path() {
                    self.record(&path, mark);
                    self.advance();
                }
            }
            Event::Alias(_) => {
                if let Some(path) = self.value_path() {
                    self.record(&path, mark);
                }
                self.advance();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = self.value_path().unwrap_or_default();
                self.record(&path, mark);
                let frame = if matches!(event, Event::MappingStart(..)) {
                    Frame::Mapping { path, key: None }
                } else {
                    Frame::Sequence { path, index: 0 }
                };
                self.stack.push(frame);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.advance();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_sequence_items_and_ancestors() {
        let text = "\
subscribers:
  erp:
    url: http://erp
routes:
  - name: a
    to: [erp]
  - name: b
    to:
      - erp
      - ghost
";
        let locations = Locations::of(text);
        assert_eq!(locations.find("subscribers.erp.url"), Some(3));
        assert_eq!(locations.find("routes[1].name"), Some(7));
        assert_eq!(locations.find("routes[1].to[1]"), Some(10));
        assert_eq!(locations.find("routes[0].to[0]"), Some(6));
        assert_eq!(locations.find("routes[1].filters"), Some(7));
        assert_eq!(locations.find("nowhere"), None);
    }
}
