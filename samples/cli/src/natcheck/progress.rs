//! Progress on stderr while the check runs. On a terminal one line is redrawn in place
//! (every second during the session-timer test, so the elapsed time moves); otherwise
//! each step is a plain line, which reads well in logs.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tsunagi::diag::{Phase, Progress};

use super::Lang;
use super::render::secs;

#[derive(Debug, Default)]
struct State {
    phase: Option<Phase>,
    lifetime_started: Option<Instant>,
    lower_s: f64,
    upper_s: Option<f64>,
    max_s: f64,
    trying_s: Vec<f64>,
    stopping: bool,
}

/// The progress display. Call [`ProgressView::update`] for each event and
/// [`ProgressView::finish`] before printing the report.
#[derive(Debug)]
pub struct ProgressView {
    state: Arc<Mutex<State>>,
    lang: Lang,
    tty: bool,
    done: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

fn phase_text(lang: Lang, p: Phase) -> &'static str {
    match (lang, p) {
        (Lang::En, Phase::Binding) => "Contacting the STUN server …",
        (Lang::En, Phase::Filtering) => "Testing filtering and hairpinning …",
        (Lang::En, Phase::Mapping) => "Testing mapping …",
        (Lang::En, Phase::PortAllocation) => "Sampling port allocation …",
        (Lang::En, Phase::Lifetime) => "Measuring the NAT session timer …",
        (Lang::En, Phase::Finished) => "Finishing the IPv6, NAT64 and port-mapping checks …",
        (Lang::Ja, Phase::Binding) => "STUNサーバーに接続中 …",
        (Lang::Ja, Phase::Filtering) => "フィルタリングとヘアピンNATを調査中 …",
        (Lang::Ja, Phase::Mapping) => "マッピングを調査中 …",
        (Lang::Ja, Phase::PortAllocation) => "ポートの割り当てを調査中 …",
        (Lang::Ja, Phase::Lifetime) => "NATのセッションタイマーを測定中 …",
        (Lang::Ja, Phase::Finished) => "IPv6、NAT64、自動ポート開放の確認を仕上げています …",
    }
}

fn line(lang: Lang, s: &State) -> String {
    if s.stopping {
        return match lang {
            Lang::En => "Stopping … (Ctrl-C again quits at once)".to_owned(),
            Lang::Ja => "中断しています …（もう一度 Ctrl-C ですぐに終了）".to_owned(),
        };
    }
    let Some(phase) = s.phase else {
        return String::new();
    };
    if phase != Phase::Lifetime {
        return phase_text(lang, phase).to_owned();
    }
    let elapsed = s.lifetime_started.map_or(0, |t| t.elapsed().as_secs());
    let trying = s
        .trying_s
        .iter()
        .map(|&t| secs(t))
        .collect::<Vec<_>>()
        .join(", ");
    match lang {
        Lang::En => {
            let mut l = format!("Measuring the NAT session timer: {elapsed} s so far");
            if s.max_s > 0.0 {
                l.push_str(&format!(", idle times up to {} s", secs(s.max_s)));
            }
            if s.lower_s > 0.0 {
                l.push_str(&format!(", idle {} s still alive", secs(s.lower_s)));
            }
            if let Some(u) = s.upper_s {
                l.push_str(&format!(", idle {} s expired", secs(u)));
            }
            if !trying.is_empty() {
                l.push_str(&format!(", trying {trying} s"));
            }
            l.push_str(" … (Ctrl-C stops it)");
            l
        }
        Lang::Ja => {
            let mut l = format!("NATのセッションタイマーを測定中: 経過 {elapsed} 秒");
            if s.max_s > 0.0 {
                l.push_str(&format!("、無通信時間は最長 {} 秒まで", secs(s.max_s)));
            }
            if s.lower_s > 0.0 {
                l.push_str(&format!("、{} 秒後も有効", secs(s.lower_s)));
            }
            if let Some(u) = s.upper_s {
                l.push_str(&format!("、{} 秒後は消失", secs(u)));
            }
            if !trying.is_empty() {
                l.push_str(&format!("、{trying} 秒を試行中"));
            }
            l.push_str(" …（Ctrl-C で中断）");
            l
        }
    }
}

fn draw(tty: bool, text: &str) {
    let mut err = std::io::stderr().lock();
    // Progress is best effort: a closed stderr must not stop the check.
    let _ = if tty {
        write!(err, "\r\x1b[2K{text}")
    } else {
        writeln!(err, "{text}")
    };
    let _ = err.flush();
}

impl ProgressView {
    /// A display in `lang`, redrawn in place when stderr is a terminal. `enabled`
    /// false shows nothing (used with `--json` when stderr is not a terminal).
    pub fn new(lang: Lang, enabled: bool) -> ProgressView {
        let tty = std::io::stderr().is_terminal();
        let state = Arc::new(Mutex::new(State::default()));
        let done = Arc::new(AtomicBool::new(!enabled));
        let ticker = (enabled && tty)
            .then(|| {
                let state = Arc::clone(&state);
                let done = Arc::clone(&done);
                std::thread::Builder::new()
                    .name("natcheck progress".to_owned())
                    .spawn(move || {
                        while !done.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(250));
                            let s = state.lock().unwrap_or_else(PoisonError::into_inner);
                            if s.phase == Some(Phase::Lifetime) && !done.load(Ordering::Relaxed) {
                                draw(true, &line(lang, &s));
                            }
                        }
                    })
                    .ok()
            })
            .flatten();
        ProgressView {
            state,
            lang,
            tty,
            done,
            ticker,
        }
    }

    /// Shows one event from the diagnosis.
    pub fn update(&self, p: &Progress) {
        if self.done.load(Ordering::Relaxed) {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match p {
            Progress::Phase(phase) => {
                if *phase == Phase::Lifetime && s.lifetime_started.is_none() {
                    s.lifetime_started = Some(Instant::now());
                }
                s.phase = Some(*phase);
            }
            Progress::Lifetime {
                lower_s,
                upper_s,
                max_s,
                trying_s,
            } => {
                s.phase = Some(Phase::Lifetime);
                s.lifetime_started.get_or_insert_with(Instant::now);
                s.lower_s = *lower_s;
                s.upper_s = *upper_s;
                s.max_s = *max_s;
                s.trying_s.clone_from(trying_s);
            }
        }
        draw(self.tty, &line(self.lang, &s));
    }

    /// Shows that a cancellation was asked for.
    pub fn stopping(&self) {
        if self.done.load(Ordering::Relaxed) {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !s.stopping {
            s.stopping = true;
            draw(self.tty, &line(self.lang, &s));
        }
    }

    /// Stops the display and clears the in-place line.
    pub fn finish(mut self) {
        let was_enabled = !self.done.swap(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if was_enabled && self.tty {
            draw(true, "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_line_says_what_is_proven_so_far() {
        let mut s = State {
            phase: Some(Phase::Lifetime),
            ..State::default()
        };
        let l = line(Lang::En, &s);
        assert!(
            l.starts_with("Measuring the NAT session timer: 0 s so far …"),
            "{l}"
        );
        s.max_s = 180.0;
        s.lower_s = 30.0;
        s.upper_s = Some(64.0);
        s.trying_s = vec![40.0, 48.0];
        let l = line(Lang::En, &s);
        assert!(
            l.contains(
                "idle times up to 180 s, idle 30 s still alive, idle 64 s expired, trying 40, 48 s"
            ),
            "{l}"
        );
        let l = line(Lang::Ja, &s);
        assert!(
            l.contains("最長 180 秒まで、30 秒後も有効、64 秒後は消失、40, 48 秒を試行中"),
            "{l}"
        );
        s.stopping = true;
        assert!(line(Lang::En, &s).starts_with("Stopping"));
        assert_eq!(phase_text(Lang::Ja, Phase::Mapping), "マッピングを調査中 …");
    }
}
