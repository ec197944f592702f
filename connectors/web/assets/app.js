// claimdesk web inbox: live cards over SSE, actions over fetch with the CSRF token.
// Markup always comes from the server (already escaped); this script only swaps it in.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const toastEl = document.getElementById("toast");
  let toastTimer = null;
  function toast(message, bad) {
    if (!message) return;
    toastEl.textContent = message;
    toastEl.className = "show" + (bad ? " bad" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastEl.className = ""; }, 4000);
  }

  function fragment(html) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    return tpl.content.firstElementChild;
  }

  const OPEN = ["new", "claimed", "replied", "waiting", "follow_up"];
  function upsert(data) {
    const list = document.getElementById("cards");
    if (!list) return;
    const only = list.dataset.only;
    if (only && only !== data.key) return;
    const existing = document.getElementById("card-" + data.key);
    if (existing && Number(existing.dataset.version) >= data.version) return;
    const node = fragment(data.html);
    node.classList.add("flash");
    if (existing) existing.replaceWith(node);
    else if (!only && OPEN.includes(data.status)) list.prepend(node);
    const empty = document.getElementById("empty");
    if (empty) empty.hidden = list.children.length > 0;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { ok: false, message: response.statusText }; }
    return data;
  }

  async function act(action, value, reason) {
    const data = await post("/web/actions", { action, value: value || "", reason: reason || "" });
    if (data.open_url) { window.location.href = data.open_url; return; }
    toast(data.message, !data.ok);
  }

  document.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (!button) return;
    ev.preventDefault();
    button.disabled = true;
    act(button.dataset.action).finally(() => { button.disabled = false; });
  });

  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (form.classList.contains("select-form")) {
      ev.preventDefault();
      const value = form.querySelector("select").value;
      const reason = form.querySelector("input[name=reason]");
      if (!value) return;
      act(form.dataset.action, value, reason ? reason.value : "");
      return;
    }
    if (form.id === "reply-form") {
      ev.preventDefault();
      const send = document.getElementById("send");
      send.disabled = true;
      fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
        .then((r) => r.json())
        .then((data) => {
          toast(data.message, !data.ok);
          if (data.ok) setTimeout(() => { window.location.href = form.dataset.return; }, 800);
        })
        .finally(() => { send.disabled = false; });
    }
  });

  document.addEventListener("change", (ev) => {
    if (ev.target.matches("select[data-autosubmit]")) ev.target.form.submit();
  });

  const list = document.getElementById("cards");
  const live = document.getElementById("live");
  if (list && list.dataset.stream && window.EventSource) {
    const source = new EventSource(list.dataset.stream);
    source.addEventListener("hello", () => { live.className = "live on"; live.textContent = live.dataset.live; document.body.dataset.live = "1"; });
    source.addEventListener("card", (ev) => upsert(JSON.parse(ev.data)));
    source.onerror = () => { live.className = "live off"; live.textContent = live.dataset.offline; document.body.dataset.live = "0"; };
  }
})();
