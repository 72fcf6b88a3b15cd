import Hummingbird

/// The dashboard's web page at `/`: the cluster, its jobs (with logs), actors and placement groups,
/// read from the same Jobs and state APIs Ray's clients use, refreshed every two seconds. One page,
/// every asset inline (the machines it runs on may have no internet).
enum WebUI {
    static func addRoutes(to router: Router<some RequestContext>) {
        router.get("/") { _, _ in HTTP.text(page, contentType: "text/html; charset=utf-8") }
        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }
    }

    static let page = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <title>swift-ray dashboard</title>
    <style>
      body { font: 14px system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
      header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: baseline; }
      header h1 { font-size: 18px; margin: 0; }
      header span { color: #aab; font-size: 12px; }
      main { padding: 12px 20px; }
      section { background: #fff; border: 1px solid #dde; border-radius: 6px; margin-bottom: 14px; padding: 8px 14px; }
      h2 { font-size: 15px; margin: 6px 0 8px; }
      table { border-collapse: collapse; width: 100%; }
      th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eef; vertical-align: top; }
      th { font-weight: 600; color: #556; font-size: 12px; text-transform: uppercase; }
      .SUCCEEDED, .ALIVE, .CREATED { color: #1a7f37; } .FAILED, .DEAD, .REMOVED { color: #cf222e; }
      .RUNNING, .PENDING, .RESCHEDULING, .PENDING_CREATION { color: #9a6700; } .STOPPED { color: #57606a; }
      .bar { background: #eef; border-radius: 3px; height: 8px; width: 120px; display: inline-block; margin-right: 6px; }
      .bar > div { background: #4c7ee8; height: 8px; border-radius: 3px; }
      pre { background: #0f1320; color: #dfe; padding: 8px; max-height: 300px; overflow: auto; font-size: 12px; }
      a { color: #2d5fc4; cursor: pointer; }
      #login { display: none; } .empty { color: #889; }
    </style>
    </head>
    <body>
    <header><h1>swift-ray</h1><span id="version"></span><span id="updated"></span></header>
    <main>
    <section id="login"><h2>Token required</h2>
      <p>This cluster uses token authentication. Paste the token (RAY_AUTH_TOKEN or ~/.ray/auth_token):</p>
      <input id="token" size="60"> <button onclick="saveToken()">Use</button></section>
    <section><h2>Cluster</h2><div id="summary"></div><table id="nodes"></table></section>
    <section><h2>Jobs</h2><table id="jobs"></table><div id="logs"></div></section>
    <section><h2>Actors</h2><table id="actors"></table></section>
    <section><h2>Placement groups</h2><table id="groups"></table></section>
    </main>
    <script>
    "use strict";
    let shownLogs = null;
    function saveToken() {
      document.cookie = "ray-authentication-token=" + encodeURIComponent(document.getElementById("token").value.trim()) + "; path=/; SameSite=Strict";
      refresh();
    }
    async function get(path) {
      const reply = await fetch(path, { credentials: "same-origin" });
      if (reply.status === 401 || reply.status === 403) { document.getElementById("login").style.display = "block"; throw new Error("auth"); }
      document.getElementById("login").style.display = "none";
      if (!reply.ok) throw new Error(path + ": " + reply.status);
      return reply.json();
    }
    const state = async (name) => (await get("/api/v0/" + name + "?limit=1000&detail=true")).data.result.result;
    function esc(value) {
      if (value === null || value === undefined) return "";
      return String(value).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
    }
    function table(id, headers, rows) {
      const el = document.getElementById(id);
      if (!rows.length) { el.innerHTML = '<tr><td class="empty">none</td></tr>'; return; }
      el.innerHTML = "<tr>" + headers.map(h => "<th>" + esc(h) + "</th>").join("") + "</tr>" +
        rows.map(r => "<tr>" + r.map(c => "<td>" + c + "</td>").join("") + "</tr>").join("");
    }
    const status = s => '<span class="' + esc(s) + '">' + esc(s) + "</span>";
    function resources(total) {
      return Object.keys(total).filter(k => !k.startsWith("node:")).sort().map(k => esc(k) + ": " + esc(total[k])).join("<br>");
    }
    async function showLogs(id) {
      shownLogs = id;
      const logs = (await get("/api/jobs/" + encodeURIComponent(id) + "/logs")).logs;
      document.getElementById("logs").innerHTML = "<h2>Logs of " + esc(id) + "</h2><pre>" + esc(logs) + "</pre>";
    }
    async function refresh() {
      try {
        const version = await get("/api/version");
        document.getElementById("version").textContent = "Ray API " + version.ray_version + " · " + version.session_name;
        const [nodes, jobs, actors, groups] = await Promise.all([state("nodes"), get("/api/jobs/"), state("actors"), state("placement_groups")]);
        const alive = nodes.filter(n => n.state === "ALIVE");
        const cpus = alive.reduce((sum, n) => sum + (n.resources_total.CPU || 0), 0);
        document.getElementById("summary").innerHTML = "<p>" + alive.length + " alive node(s) of " + nodes.length + ", " + cpus + " CPUs, " +
          jobs.filter(j => j.status === "RUNNING").length + " running job(s), " + actors.filter(a => a.state === "ALIVE").length + " live actor(s)</p>";
        table("nodes", ["Node", "IP", "Head", "State", "Resources"], nodes.map(n =>
          [esc(n.node_id.slice(0, 12)), esc(n.node_ip), n.is_head_node ? "yes" : "", status(n.state), resources(n.resources_total)]));
        table("jobs", ["Submission", "Status", "Entrypoint", "Message", "Started", "Logs"], jobs.map(j =>
          [esc(j.submission_id || j.job_id), status(j.status), esc(j.entrypoint), esc(j.message),
           esc(j.start_time ? new Date(j.start_time).toLocaleTimeString() : ""),
           j.submission_id ? '<a onclick="showLogs(\'' + esc(j.submission_id) + '\')">logs</a>' : ""]));
        table("actors", ["Actor", "Class", "Name", "State", "Job", "PID"], actors.map(a =>
          [esc(a.actor_id.slice(0, 12)), esc(a.class_name), esc(a.name), status(a.state), esc(a.job_id), esc(a.pid)]));
        table("groups", ["Group", "Name", "State", "Bundles"], groups.map(g =>
          [esc(g.placement_group_id.slice(0, 12)), esc(g.name), status(g.state), esc((g.bundles || []).length)]));
        if (shownLogs) await showLogs(shownLogs);
        document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
      } catch (error) {
        if (error.message !== "auth") document.getElementById("updated").textContent = "refresh failed: " + error.message;
      }
    }
    refresh();
    setInterval(refresh, 2000);
    </script>
    </body>
    </html>
    """#
}
