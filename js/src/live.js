// A live view says it is live: the "kernel not connected" line saved beside it (a
// separate output, for a notebook reopened without its widgets) then stays hidden.
export function markLive(key) {
  if (!key) return;
  const live = (globalThis.__nbtrackLive = globalThis.__nbtrackLive || new Set());
  live.add(key);
  for (const e of document.querySelectorAll(".nbtrack-offline")) if (e.dataset.for === key) e.style.display = "none";
}
