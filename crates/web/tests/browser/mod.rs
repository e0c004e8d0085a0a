//! The browser-test harness: a chromedriver of our own (Debian's `chromium-driver`) on a port
//! it picked, driving Debian's headless Chromium over WebDriver (fantoccini), skipped with a
//! message when the driver is missing unless `CI` is set.
#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a browser test body with a fresh Chromium session; the session (and its browser)
/// is closed whether the body passes or not.
pub async fn with_browser<F, Fut>(test: &str, window: &str, extra: &[&str], body: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if !have_chromedriver(test) {
        return;
    }
    let driver = Driver::start();
    driver.ready().await;
    let client = driver.session_with(window, extra).await;
    let outcome = tokio::spawn(body(client.clone())).await;
    let _ = client.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver of our own on a port it picked, stopped (with its browsers) on drop.
pub struct Driver {
    child: Child,
    port: u16,
    /// Chromium's profile: fresh and empty for every run.
    profile: tempfile::TempDir,
}

impl Driver {
    pub fn start() -> Driver {
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // It prints "ChromeDriver was started successfully on port N."; the rest of what it
        // prints is drained so that it never blocks on a full pipe.
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('.').trim().parse::<u16>().ok());
                }
            }
        });
        let mut driver = Driver {
            child,
            port: 0,
            profile: tempfile::tempdir().unwrap(),
        };
        driver.port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(p)) => p,
            other => panic!("chromedriver did not say which port it listens on: {other:?}"),
        };
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until the driver says it is ready for a session.
    pub async fn ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/status", self.url())).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return;
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A tablet in portrait, as a kiosk would be.
    pub async fn session(&self) -> Client {
        self.session_with("820,1180", &[]).await
    }

    /// A browser session with this window size and extra Chromium flags.
    pub async fn session_with(&self, window: &str, extra: &[&str]) -> Client {
        // "phone:W,H" emulates a phone's viewport (headless Chromium's windows are at least
        // 500 px wide, so a narrower one needs the emulation).
        let phone = window.strip_prefix("phone:");
        let window = phone.unwrap_or(window);
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            &format!("--window-size={window}"),
            &format!("--user-data-dir={}", self.profile.path().display()),
        ];
        let args: Vec<&str> = args.iter().copied().chain(extra.iter().copied()).collect();
        let mut options = json!({"binary": CHROMIUM, "args": args});
        if let Some((w, h)) = phone.and_then(|p| p.split_once(',')) {
            options["mobileEmulation"] = json!({"deviceMetrics": {
                "width": w.parse::<u32>().unwrap(), "height": h.parse::<u32>().unwrap(),
                "pixelRatio": 2, "touch": true, "mobile": true}});
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": options,
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url())
            .await
            .expect("a Chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // `/shutdown` makes chromedriver quit its browsers too; a kill only if it hangs.
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = write!(
                s,
                "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            );
            let _ = std::io::Read::read(&mut s, &mut [0u8; 256]);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the browser test can run here: skipped (with a message) only outside CI.
pub fn have_chromedriver(test: &str) -> bool {
    if Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "CI is set but {CHROMEDRIVER} is missing: install Debian's chromium and \
             chromium-driver (.ci/run does)"
        );
    }
    eprintln!(
        "SKIPPED {test}: {CHROMEDRIVER} is missing (apt-get install chromium \
         chromium-driver); set CI=1 to make this a failure"
    );
    false
}

/// Polls `f` until it gives a value, for up to `secs` seconds.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn js(c: &Client, script: &str, args: Vec<Value>) -> Value {
    c.execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// The password `TestApp::add_user` gives every user a browser test signs in as.
pub const PASSWORD: &str = "correct-horse-battery";

pub async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

pub async fn wait_for(c: &Client, css: &str) {
    if c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .is_err()
    {
        // Say what the page showed instead: an error it rendered explains most timeouts.
        let url = c
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let shown = c
            .execute("return (document.body ? document.body.innerText : '') + '\\nrequests: ' + JSON.stringify(performance.getEntriesByType('resource').map(function (r) { return [r.name, Math.round(r.duration), r.responseStatus]; }));", vec![])
            .await
            .unwrap_or_default();
        panic!("waiting for {css} on {url}; the page shows:\n{shown}");
    }
}

pub async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

pub async fn type_into(c: &Client, css: &str, text: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

pub async fn sign_in(c: &Client, base: &str, email: &str, next: &str) {
    c.goto(&format!("{base}{next}")).await.unwrap();
    // A page asked for without a session leads to sign-in, and back after it.
    wait_for(c, "#password").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    type_into(c, "#email", email).await;
    type_into(c, "#password", PASSWORD).await;
    click(c, "button[type=submit]").await;
    wait_for(c, "#view").await;
    assert_eq!(c.current_url().await.unwrap().path(), next);
}

pub async fn screenshot(c: &Client, name: &str) {
    if std::env::var_os("RELENTLESS_SCREENSHOTS").is_none() {
        return;
    }
    let png = c.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}
