// banditd dashboard: optional auto-refresh. Once per interval (the page's
// data-refresh-seconds), while the tab is visible, the page fetches itself once and swaps in
// the new <main>; a hidden tab sends nothing and catches up as soon as it is shown again.
// Without this script the pages work the same, only without refreshing.
(() => {
  'use strict';
  const seconds = Number(document.body.dataset.refreshSeconds);
  if (!(seconds > 0) || !window.fetch || !window.DOMParser) return;
  // The page may now say that it refreshes.
  document.documentElement.classList.add('js');
  const intervalMs = seconds * 1000;
  let due = Date.now() + intervalMs;
  let inFlight = false;

  async function refresh() {
    if (inFlight || document.hidden) return;
    inFlight = true;
    try {
      const response = await fetch(window.location.href, {
        credentials: 'same-origin',
        headers: { Accept: 'text/html' },
        cache: 'no-store',
      });
      if (response.ok && !response.redirected) {
        const next = new DOMParser()
          .parseFromString(await response.text(), 'text/html')
          .querySelector('main');
        const current = document.querySelector('main');
        if (next && current) current.replaceWith(next);
      }
    } catch (_) {
      // Offline or restarting: try again at the next interval.
    } finally {
      inFlight = false;
      due = Date.now() + intervalMs;
    }
  }

  // A cheap local timer; a request only goes out when one is due and the tab is visible.
  window.setInterval(() => {
    if (Date.now() >= due) refresh();
  }, 1000);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && Date.now() >= due) refresh();
  });
})();
