//! What the page and the API show, kept from the records the sink reads: the latest status
//! and prediction, a bounded history of events (the open ones are the current events), and
//! how many events started per name.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde::Serialize;

use crate::record::Record;
use crate::sinks::RunningModel;

/// Events kept for `/api/events` (the page shows the last 50).
pub(super) const HISTORY: usize = 1000;

/// One sound event as the page shows it: its start, and its end once it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Event {
    pub id: u64,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Stream seconds where it started.
    pub start: f64,
    /// Wall clock (RFC 3339) when it started.
    pub time: String,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak: Option<f32>,
    /// `/clips/<name>` of its sound and picture, when the clips sink wrote them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl Event {
    /// The name people see: the group, else the label.
    pub fn name(&self) -> &str {
        self.group.as_deref().unwrap_or(&self.label)
    }
}

/// The board, shared by the sink's task and every request.
pub(super) struct Board {
    inner: Mutex<Inner>,
    pub started: Instant,
}

#[derive(Default)]
pub(super) struct Inner {
    pub model: Option<Arc<RunningModel>>,
    pub status: Option<Arc<Record>>,
    pub prediction: Option<Arc<Record>>,
    /// Oldest first, at most [`HISTORY`].
    pub events: VecDeque<Event>,
    /// Events started since hark started, per name.
    pub started_per_name: BTreeMap<String, u64>,
}

impl Board {
    pub fn new(model: Arc<RunningModel>) -> Board {
        Board {
            inner: Mutex::new(Inner {
                model: Some(model),
                ..Inner::default()
            }),
            started: Instant::now(),
        }
    }

    pub fn read(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_model(&self, model: Arc<RunningModel>) {
        self.read().model = Some(model);
    }

    /// Take in one record from the fan-out.
    pub fn take(&self, rec: &Arc<Record>) {
        let mut b = self.read();
        match &**rec {
            Record::Prediction { .. } => b.prediction = Some(rec.clone()),
            Record::Status { .. } => b.status = Some(rec.clone()),
            Record::EventStart {
                id,
                label,
                group,
                start,
                time,
                score,
                ..
            } => {
                let (clip, image) = clip_urls(rec);
                let event = Event {
                    id: *id,
                    label: label.clone(),
                    group: group.clone(),
                    start: *start,
                    time: time.clone(),
                    score: *score,
                    end: None,
                    end_time: None,
                    peak: None,
                    clip,
                    image,
                };
                *b.started_per_name
                    .entry(event.name().to_owned())
                    .or_default() += 1;
                if b.events.len() == HISTORY {
                    b.events.pop_front();
                }
                b.events.push_back(event);
            }
            Record::EventEnd {
                id,
                end,
                time,
                peak,
                ..
            } => {
                let (clip, image) = clip_urls(rec);
                if let Some(e) = b.events.iter_mut().rev().find(|e| e.id == *id) {
                    e.end = Some(*end);
                    e.end_time = Some(time.clone());
                    e.peak = Some(*peak);
                    e.clip = clip.or(e.clip.take());
                    e.image = image.or(e.image.take());
                }
            }
        }
    }
}

/// `/clips/<basename>` of the record's `clip` and `image` fields (absolute paths the clips
/// sink adds to event records), read from its JSON so that this needs no field of its own.
fn clip_urls(rec: &Record) -> (Option<String>, Option<String>) {
    let (clip, image) = match rec {
        Record::EventStart { clip, image, .. } | Record::EventEnd { clip, image, .. } => {
            (clip, image)
        }
        _ => return (None, None),
    };
    let url = |path: &Option<String>| {
        let name = Path::new(path.as_deref()?).file_name()?.to_str()?;
        Some(format!("/clips/{name}"))
    };
    (url(clip), url(image))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(id: u64, label: &str) -> Arc<Record> {
        Arc::new(Record::EventStart {
            id,
            label: label.into(),
            group: None,
            start: id as f64,
            time: format!("2026-01-01T00:00:{id:02}.000Z"),
            score: 0.9,
            clip: None,
            image: None,
        })
    }

    fn model() -> Arc<RunningModel> {
        Arc::new(RunningModel {
            name: "m".into(),
            labels: vec!["Knock".into()],
            groups: Default::default(),
            sample_rate: 16_000,
            window: 1.0,
            hop: 0.5,
        })
    }

    #[test]
    fn an_event_ends_in_place_and_the_history_is_bounded() {
        let board = Board::new(model());
        board.take(&start(1, "Knock"));
        board.take(&Arc::new(Record::EventEnd {
            id: 1,
            label: "Knock".into(),
            group: None,
            start: 1.0,
            end: 2.5,
            time: "t".into(),
            peak: 0.95,
            clip: None,
            image: None,
        }));
        assert_eq!(board.read().events[0].end, Some(2.5));
        assert_eq!(board.read().events[0].peak, Some(0.95));
        for id in 2..(HISTORY as u64 + 10) {
            board.take(&start(id, "Knock"));
        }
        let b = board.read();
        assert_eq!(b.events.len(), HISTORY);
        assert_eq!(b.started_per_name["Knock"], HISTORY as u64 + 9);
        assert_eq!(b.events.back().unwrap().id, HISTORY as u64 + 9);
    }
}
