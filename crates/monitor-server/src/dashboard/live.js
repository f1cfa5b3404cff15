// The devices page's live update: its rows are fetched again every few seconds. A file of
// its own, not an inline script, so the Content-Security-Policy can forbid inline scripts.
const rows = document.getElementById('device-rows');
if (rows) {
  setInterval(async () => {
    try {
      const response = await fetch(rows.dataset.source, { credentials: 'same-origin' });
      if (response.ok) {
        rows.innerHTML = await response.text();
      }
    } catch (error) {}
  }, Number(rows.dataset.refreshMillis) || 2000);
}
