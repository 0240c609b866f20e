/* Moderation console: progressive enhancement only. Every action works without this file
   through plain forms; this adds keyboard shortcuts, row selection, click-to-seek in the
   transcript and the live board's event stream. Text from residents is only ever inserted
   with textContent, never as HTML. */
(function () {
  "use strict";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function isTyping(target) {
    if (!target || !target.tagName) { return false; }
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  /* -- shortcut help ------------------------------------------------------------------ */
  function setupHelp() {
    var dialog = $("dialog#shortcuts");
    var opener = $("#shortcuts-open");
    if (!dialog) { return null; }
    if (opener) {
      opener.hidden = false;
      opener.addEventListener("click", function () { showHelp(dialog); });
    }
    return dialog;
  }
  function showHelp(dialog) {
    if (typeof dialog.showModal === "function" && !dialog.open) { dialog.showModal(); }
  }

  function onShortcut(handlers) {
    var dialog = setupHelp();
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) { return; }
      if (dialog && dialog.open) { return; }
      var key = event.key;
      if (key === "?" && dialog) { event.preventDefault(); showHelp(dialog); return; }
      var handler = handlers[key];
      if (handler) {
        event.preventDefault();
        handler(event);
      }
    });
  }

  function submitWith(form, button) {
    if (!form || !button) { return; }
    if (typeof form.requestSubmit === "function") { form.requestSubmit(button); }
    else { button.click(); }
  }

  /* -- queue ---------------------------------------------------------------------------- */
  function setupQueue() {
    var table = $("table#queue");
    var bulkForm = $("#bulk-form");
    var rows = table ? $all("tbody tr[data-contribution-id]", table) : [];
    var focused = -1;

    function checkbox(row) { return $("input.select-row", row); }
    function markSelected(row) {
      var box = checkbox(row);
      row.classList.toggle("is-selected", !!(box && box.checked));
    }
    function focusRow(index) {
      if (!rows.length) { return; }
      index = Math.max(0, Math.min(rows.length - 1, index));
      rows.forEach(function (row) { row.classList.remove("is-focused"); });
      focused = index;
      var row = rows[index];
      row.classList.add("is-focused");
      var link = $("a.contribution-link", row);
      if (link) { link.focus(); }
      row.scrollIntoView({ block: "nearest" });
    }
    function selectedCount() { return rows.filter(function (r) { var b = checkbox(r); return b && b.checked; }).length; }
    function bulk(action) {
      if (!bulkForm) { return; }
      if (selectedCount() === 0 && focused >= 0) {
        var box = checkbox(rows[focused]);
        if (box) { box.checked = true; markSelected(rows[focused]); }
      }
      if (selectedCount() === 0) { return; }
      var select = $("#bulk-action");
      if (select) { select.value = action; }
      submitWith(bulkForm, $("#bulk-apply"));
    }

    rows.forEach(function (row, index) {
      markSelected(row);
      row.addEventListener("focusin", function () {
        rows.forEach(function (r) { r.classList.remove("is-focused"); });
        row.classList.add("is-focused");
        focused = index;
      });
      var box = checkbox(row);
      if (box) { box.addEventListener("change", function () { markSelected(row); syncAll(); }); }
    });

    var all = $("#select-all");
    var allLink = $(".select-all-link");
    function syncAll() {
      if (!all) { return; }
      var count = selectedCount();
      all.checked = count > 0 && count === rows.length;
      all.indeterminate = count > 0 && count < rows.length;
    }
    if (all && rows.length) {
      all.hidden = false;
      if (allLink) { allLink.hidden = true; }
      all.addEventListener("change", function () {
        rows.forEach(function (row) { var b = checkbox(row); if (b) { b.checked = all.checked; } markSelected(row); });
      });
      syncAll();
    }

    onShortcut({
      "j": function () { focusRow(focused + 1); },
      "k": function () { focusRow(focused < 0 ? 0 : focused - 1); },
      "x": function () {
        if (focused < 0) { focusRow(0); }
        var row = rows[focused];
        var box = row && checkbox(row);
        if (box) { box.checked = !box.checked; markSelected(row); syncAll(); }
      },
      "a": function () { bulk("publish"); },
      "s": function () { bulk("spam"); },
      "r": function () { var reason = $("#bulk-reason"); if (reason) { reason.focus(); } },
      "/": function () { var search = $("#filter-q"); if (search) { search.focus(); search.select(); } },
      "Enter": function () {
        var link = focused >= 0 && $("a.contribution-link", rows[focused]);
        if (link) { link.click(); }
      }
    });
  }

  /* -- decisions: a rejection needs its public reason ---------------------------------- */
  /* The browser's own validation says so before anything is sent (the server refuses it
     anyway without JavaScript); only the reject button makes the reason required. */
  function setupReasonCheck(form) {
    var reason = form && $("textarea[name=reason]", form);
    if (!reason) { return; }
    var error = $(".field-error", form);
    var message = error ? error.textContent.trim() : "";
    $all('button[name="action"]', form).forEach(function (button) {
      button.addEventListener("click", function () {
        var missing = button.value === "reject" && !reason.value.trim();
        reason.setCustomValidity(missing ? message : "");
        if (!missing) { reason.removeAttribute("aria-invalid"); }
      });
    });
    reason.addEventListener("invalid", function () {
      reason.setAttribute("aria-invalid", "true");
      if (error) { error.hidden = false; }
    });
    reason.addEventListener("input", function () {
      reason.setCustomValidity("");
      reason.removeAttribute("aria-invalid");
      if (error) { error.hidden = true; }
    });
  }

  /* -- contribution page ----------------------------------------------------------------- */
  function setupContribution() {
    var decision = $("#decision-form");
    var reason = $("#reason");

    setupReasonCheck(decision);

    var audio = $("audio#contribution-audio");
    var words = $all("#transcript span.word");
    if (audio && words.length) {
      words.forEach(function (word) {
        word.addEventListener("click", function () {
          var start = parseFloat(word.getAttribute("data-start"));
          if (!isNaN(start)) {
            audio.currentTime = start;
            var played = audio.play();
            if (played && typeof played.catch === "function") { played.catch(function () {}); }
          }
        });
      });
      var current = null;
      audio.addEventListener("timeupdate", function () {
        var t = audio.currentTime;
        var found = null;
        for (var i = 0; i < words.length; i++) {
          var s = parseFloat(words[i].getAttribute("data-start"));
          var e = parseFloat(words[i].getAttribute("data-end"));
          if (t >= s && t <= e) { found = words[i]; break; }
        }
        if (found !== current) {
          if (current) { current.classList.remove("is-playing"); }
          if (found) { found.classList.add("is-playing"); }
          current = found;
        }
      });
    }

    function follow(id) { var link = $(id); if (link) { link.click(); } }
    function decide(value) {
      if (!decision) { return; }
      if (reason) { reason.setCustomValidity(""); }
      submitWith(decision, $('button[name="action"][value="' + value + '"]', decision));
    }
    onShortcut({
      "j": function () { follow("#next-contribution"); },
      "k": function () { follow("#prev-contribution"); },
      "a": function () { decide("publish"); },
      "s": function () { decide("spam"); },
      "r": function () { if (reason) { reason.focus(); } }
    });
  }

  /* -- live board ------------------------------------------------------------------------ */
  function setupLive() {
    var list = $("#live-list");
    var status = $("#live-status");
    if (!list || typeof window.EventSource !== "function") { return; }
    var MAX_ITEMS = 200;

    function setState(state) {
      if (!status) { return; }
      status.setAttribute("data-state", state);
      status.textContent = status.getAttribute(state === "open" ? "data-open" : "data-closed");
    }

    function el(tag, className, text) {
      var node = document.createElement(tag);
      if (className) { node.className = className; }
      if (text !== undefined && text !== null) { node.textContent = String(text); }
      return node;
    }

    function icon(channel) {
      var template = $('template.channel-icon[data-channel="' + channel + '"]') ||
        $('template.channel-icon[data-channel="other"]');
      return template ? document.importNode(template.content, true) : document.createTextNode("");
    }

    function fill(article, item) {
      var labels = item.labels || {};
      article.setAttribute("data-status", item.status || "");
      $(".live-status-label", article).textContent = labels.status || "";
      $(".live-status-label", article).className = "badge status status--" + (item.status || "") + " live-status-label";
      // A voice message's text is its transcript: shown once, as the transcript.
      var sameAsTranscript = item.channel === "voice" && item.text === item.transcript;
      $(".live-text", article).textContent = sameAsTranscript ? "" : (item.text || "");
      var transcript = $(".live-transcript", article);
      if (transcript) {
        transcript.textContent = item.transcript || labels.transcription || "";
        transcript.classList.toggle("is-pending", !item.transcript);
      }
      var published = $(".live-public", article);
      if (published) {
        $(".live-public__text", published).textContent = item.public_text || "";
        published.hidden = !item.public_text;
      }
      // Personal data masked by the server until there is a public version: say so.
      var masked = $(".live-masked", article);
      if (masked) { masked.hidden = !item.masked; }
      var broadcast = $(".live-broadcast", article);
      if (broadcast) { broadcast.textContent = labels.broadcast || ""; }
    }

    function build(item) {
      var labels = item.labels || {};
      var channel = /^[a-z]+$/.test(item.channel || "") ? item.channel : "other";
      var article = el("article", "live-item is-new");
      article.setAttribute("data-contribution-id", String(item.id));
      article.setAttribute("data-reference", item.reference || "");
      article.setAttribute("data-channel", item.channel || "");
      var head = el("header", "live-item__head");
      head.appendChild(el("span", "live-reference", item.reference));
      var channelSpan = el("span", "channel channel--" + channel);
      channelSpan.appendChild(icon(channel));
      channelSpan.appendChild(el("span", "live-channel", labels.channel));
      head.appendChild(channelSpan);
      head.appendChild(el("span", "live-campaign", item.campaign_title || ""));
      var time = el("time", "live-received", labels.received);
      time.setAttribute("datetime", item.received_at || "");
      time.setAttribute("title", labels.received_long || "");
      head.appendChild(time);
      head.appendChild(el("span", "badge live-status-label"));
      article.appendChild(head);
      article.appendChild(el("p", "live-text"));
      var published = el("p", "live-public");
      published.appendChild(el("span", "live-public__label", list.getAttribute("data-public-label")));
      published.appendChild(document.createTextNode(" "));
      published.appendChild(el("span", "live-public__text"));
      article.appendChild(published);
      if (item.channel === "voice") { article.appendChild(el("p", "live-transcript")); }
      article.appendChild(el("p", "live-masked", list.getAttribute("data-masked-label")));
      if (item.channel === "voice") { article.appendChild(el("p", "live-broadcast")); }
      fill(article, item);
      return article;
    }

    function find(id) {
      var key = String(parseInt(id, 10));
      var items = list.querySelectorAll("article.live-item");
      for (var i = 0; i < items.length; i++) {
        if (items[i].getAttribute("data-contribution-id") === key) { return items[i]; }
      }
      return null;
    }

    function upsert(item) {
      if (!item || item.id === undefined) { return; }
      var existing = find(item.id);
      if (existing) { fill(existing, item); return; }
      var empty = $("#live-empty");
      if (empty) { empty.remove(); }
      list.insertBefore(build(item), list.firstChild);
      var all = list.querySelectorAll("article.live-item");
      for (var i = MAX_ITEMS; i < all.length; i++) { all[i].remove(); }
    }

    var url = list.getAttribute("data-events") + "?since=" + encodeURIComponent(list.getAttribute("data-since") || "");
    var campaign = list.getAttribute("data-campaign");
    if (campaign) { url += "&campaign=" + encodeURIComponent(campaign); }
    var source = new EventSource(url);
    source.addEventListener("open", function () { setState("open"); });
    source.addEventListener("error", function () { setState("closed"); });
    source.addEventListener("contribution", function (event) {
      try { upsert(JSON.parse(event.data)); } catch (ignored) { /* a malformed event is skipped */ }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function start() {
    var page = document.body.getAttribute("data-page");
    if (page === "queue") { setupQueue(); }
    else if (page === "contribution") { setupContribution(); }
    else if (page === "live") { setupLive(); }
    else if (page === "group") { setupReasonCheck($("#group-decision-form")); }
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
})();
