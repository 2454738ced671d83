using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using ScheduleSync.Tests.Server;
using static Microsoft.Playwright.Assertions;

namespace ScheduleSync.Tests.Ui;

/// <summary>
/// The page at <c>/</c> in a real Chromium against a real server (its own database and file): what a person sees and
/// does, checked in the file and the database. One browser for the class; each test its own server and browser context.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class WebPageTests(BrowserFixture browser) : IClassFixture<BrowserFixture>
{
    private const string Yaml = ServerFixture.DefaultYaml + """
          report-weekly:
            name: Weekly report
            schedule: "0 8 * * MON"
            timezone: Europe/Berlin
            command: make-report
            tags: [reports]

        """;

    static WebPageTests() => SetDefaultExpectTimeout(10_000);

    private static ILocator Row(IPage page, string id) => page.Locator($"#tasks-table tr[data-id=\"{id}\"]");

    [Fact]
    public async Task Tasks_list_shows_next_runs_in_both_zones_and_filters_by_search_tag_and_enabled()
    {
        await using var server = await ServerFixture.StartAsync("ui_list", Yaml);
        var page = await PageChecks.OpenAsync(browser.Browser, server.BaseAddress);

        await Expect(page.Locator("#tasks-table tbody tr")).ToHaveCountAsync(3);
        await Expect(page.Locator("#task-count")).ToHaveTextAsync("3 of 3 tasks shown");
        // 03:00 UTC is 12:00 in Tokyo; the weekly report runs at 08:00 Berlin time (07:00 UTC in winter, 06:00 in summer).
        await Expect(Row(page, "nightly-backup").Locator(".next-task-zone")).ToContainTextAsync("03:00");
        await Expect(Row(page, "nightly-backup").Locator(".next-viewer-zone")).ToContainTextAsync("12:00");
        await Expect(Row(page, "report-weekly").Locator(".next-task-zone")).ToContainTextAsync("Mon");
        await Expect(Row(page, "report-weekly").Locator(".next-task-zone")).ToContainTextAsync("08:00");
        await Expect(Row(page, "report-weekly").Locator(".timezone")).ToHaveTextAsync("Europe/Berlin");
        await Expect(Row(page, "cache-warmup").Locator(".enabled")).ToHaveTextAsync("no");
        await PageChecks.ScreenshotAsync(page, "tasks");
        await PageChecks.AssertAccessibleAsync(page, "tasks list");

        await page.GetByLabel("Tag").SelectOptionAsync("backup");
        await Expect(page.Locator("#tasks-table tbody tr")).ToHaveCountAsync(1);
        await Expect(Row(page, "nightly-backup")).ToBeVisibleAsync();
        await page.GetByLabel("Tag").SelectOptionAsync("");
        await page.GetByLabel("Enabled").SelectOptionAsync("false");
        await Expect(page.Locator("#tasks-table tbody tr")).ToHaveCountAsync(1);
        await Expect(Row(page, "cache-warmup")).ToBeVisibleAsync();
        await page.GetByLabel("Enabled").SelectOptionAsync("");
        await page.GetByLabel("Search").FillAsync("REPORT");
        await Expect(page.Locator("#tasks-table tbody tr")).ToHaveCountAsync(1);
        await Expect(Row(page, "report-weekly")).ToBeVisibleAsync();
        await page.GetByLabel("Validity").SelectOptionAsync("invalid");
        await Expect(page.Locator("#task-count")).ToHaveTextAsync("0 of 3 tasks shown");
        await page.GetByLabel("Validity").SelectOptionAsync("");
        await page.GetByLabel("Search").FillAsync("");
        await Expect(page.Locator("#task-count")).ToHaveTextAsync("3 of 3 tasks shown");

        // The keyboard reaches a task: tab from the search box through the filters to the first task link, Enter opens it.
        await page.GetByLabel("Search").FocusAsync();
        for (var i = 0; i < 10 && await page.EvaluateAsync<string>("document.activeElement.textContent") != "nightly-backup"; i++)
            await page.Keyboard.PressAsync("Tab");
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("h1")).ToHaveTextAsync("Nightly backup (nightly-backup)");
        await Expect(page.Locator("#next-runs tbody tr")).ToHaveCountAsync(10);
        await Expect(page.Locator("#next-runs tbody tr").First).ToContainTextAsync("12:00");
        await Expect(page.Locator("#history > li")).ToHaveCountAsync(1);
        await Expect(page.Locator("#history")).ToContainTextAsync("created from the file");
        await PageChecks.ScreenshotAsync(page, "task");
        await PageChecks.AssertAccessibleAsync(page, "task detail");

        // A narrow window: the table turns into cards, nothing runs off the side.
        await page.SetViewportSizeAsync(380, 800);
        await page.GotoAsync("/#/tasks");
        await Expect(page.Locator("#tasks-table tbody tr")).ToHaveCountAsync(3);
        await PageChecks.AssertNoSidewaysScrollAsync(page, "tasks list, 380 px");
        await PageChecks.ScreenshotAsync(page, "tasks-narrow");
    }

    [Fact]
    public async Task Task_created_in_the_page_is_in_the_file_after_a_validation_error_shown_at_its_field()
    {
        await using var server = await ServerFixture.StartAsync("ui_create", Yaml);
        var page = await PageChecks.OpenAsync(browser.Browser, server.BaseAddress);
        await page.GetByRole(AriaRole.Link, new() { Name = "New task" }).ClickAsync();
        await page.GetByLabel("ID").FillAsync("db-vacuum");
        await page.GetByLabel("Schedule").FillAsync("61 4 * * SUN");
        await page.GetByLabel("Command").FillAsync("vacuumdb --all");
        await page.GetByLabel("Tags").FillAsync("ops, db");
        await page.GetByLabel("Time zone").FillAsync("Europe/Paris");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create task" }).ClickAsync();

        // The API's message for the field, at the field, and the field marked invalid for assistive technology.
        var scheduleError = page.Locator("#field-schedule-error");
        await Expect(scheduleError).ToBeVisibleAsync();
        await Expect(scheduleError).ToContainTextAsync("61");
        await Expect(page.GetByLabel("Schedule")).ToHaveAttributeAsync("aria-invalid", "true");
        await Expect(page.Locator("#field-command-error")).ToBeHiddenAsync();
        Assert.DoesNotContain("db-vacuum", File.ReadAllText(server.ConfigPath), StringComparison.Ordinal);
        await PageChecks.ScreenshotAsync(page, "task-form-error");
        await PageChecks.AssertAccessibleAsync(page, "task form with an error");

        await page.GetByLabel("Schedule").FillAsync("0 4 * * SUN");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create task" }).ClickAsync();
        await Expect(page.Locator("h1")).ToHaveTextAsync("db-vacuum");
        await Expect(page.GetByRole(AriaRole.Status).Filter(new() { HasText = "Saved" })).ToContainTextAsync("in the file");

        var task = Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "db-vacuum");
        Assert.Equal("0 4 * * SUN", task.Schedule);
        Assert.Equal("vacuumdb --all", task.Command);
        Assert.Equal("Europe/Paris", task.Timezone);
        Assert.Equal(["ops", "db"], task.Tags.ToArray());
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());

        // Deleting asks first, then removes the task from both sides.
        await page.GetByRole(AriaRole.Button, new() { Name = "Delete…" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Delete db-vacuum" })).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.GetByRole(AriaRole.Status).Filter(new() { HasText = "deleted" })).ToContainTextAsync("db-vacuum");
        await Expect(Row(page, "db-vacuum")).ToHaveCountAsync(0);
        Assert.DoesNotContain(server.ParseFile().ValidTasks, t => t.Id == "db-vacuum");
        Assert.Equal(0L, await server.ScalarAsync<long>("SELECT count(*) FROM scheduled_tasks WHERE id = 'db-vacuum'"));
    }

    [Fact]
    public async Task File_edited_on_disk_changes_the_row_without_a_reload()
    {
        await using var server = await ServerFixture.StartAsync("ui_live_file", Yaml);
        var page = await PageChecks.OpenAsync(browser.Browser, server.BaseAddress);
        await Expect(page.Locator("#live")).ToHaveTextAsync("live");
        await Expect(Row(page, "nightly-backup").Locator(".schedule")).ToHaveTextAsync("0 3 * * *");
        await page.EvaluateAsync("window.__notReloaded = true");

        var text = File.ReadAllText(server.ConfigPath).Replace("schedule: \"0 3 * * *\"", "schedule: \"30 4 * * *\"", StringComparison.Ordinal);
        await File.WriteAllTextAsync(server.ConfigPath, text);

        await Expect(Row(page, "nightly-backup").Locator(".schedule")).ToHaveTextAsync("30 4 * * *");
        await Expect(Row(page, "nightly-backup").Locator(".next-task-zone")).ToContainTextAsync("04:30");
        Assert.True(await page.EvaluateAsync<bool>("window.__notReloaded === true"), "the page was reloaded");
        Assert.Equal("30 4 * * *", await server.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'nightly-backup'"));
    }

    [Fact]
    public async Task Conflict_appears_live_and_a_merge_taking_one_field_from_each_side_reaches_file_and_database()
    {
        // The watcher waits far longer than the test, so the file edit and the SQL change meet in one sync: a conflict.
        await using var server = await ServerFixture.StartAsync("ui_conflict", Yaml, o =>
        {
            o.WatchDebounce = TimeSpan.FromMinutes(10);
            o.PollInterval = TimeSpan.FromMinutes(10);
        });
        var page = await PageChecks.OpenAsync(browser.Browser, server.BaseAddress, "#/conflicts");
        await Expect(page.Locator("#no-conflicts")).ToBeVisibleAsync();
        await Expect(page.Locator("#live")).ToHaveTextAsync("live");

        var text = File.ReadAllText(server.ConfigPath)
            .Replace("schedule: \"0 3 * * *\"", "schedule: \"0 4 * * *\"", StringComparison.Ordinal)
            .Replace("command: /usr/local/bin/backup.sh", "command: /opt/backup-file.sh", StringComparison.Ordinal);
        await File.WriteAllTextAsync(server.ConfigPath, text);
        Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 5 * * *', command = '/opt/backup-db.sh', max_retries = 2 WHERE id = 'nightly-backup'"));

        // The NOTIFY-triggered sync finds both changes; the list shows the conflict without a reload.
        var link = page.Locator("#conflicts").GetByRole(AriaRole.Link, new() { Name = "Conflict " }).First;
        await Expect(link).ToBeVisibleAsync();
        await Expect(page.Locator("#conflict-count")).ToContainTextAsync("1");
        await PageChecks.ScreenshotAsync(page, "conflicts");
        await PageChecks.AssertAccessibleAsync(page, "conflicts list");
        await link.ClickAsync();

        var versions = page.Locator("#versions");
        await Expect(versions.Locator("tr.both")).ToHaveCountAsync(2); // schedule and command changed on both sides
        await Expect(versions.Locator("tr[data-field=\"max_retries\"]:not(.both) td.changed")).ToHaveCountAsync(1); // database only
        await Expect(versions.Locator("tr[data-field=\"schedule\"] td.changed")).ToHaveCountAsync(2);
        await page.GetByRole(AriaRole.Button, new() { Name = "Merge…" }).ClickAsync();
        await page.Locator("fieldset[data-field=\"schedule\"]").GetByLabel("File").CheckAsync();
        await page.Locator("fieldset[data-field=\"command\"]").GetByLabel("Database").CheckAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Show the result" }).ClickAsync();

        var preview = page.Locator("#preview");
        await Expect(preview.Locator("dd[data-field=\"schedule\"]")).ToContainTextAsync("0 4 * * *");
        await Expect(preview.Locator("dd[data-field=\"command\"]")).ToContainTextAsync("/opt/backup-db.sh");
        await Expect(preview.Locator("dd[data-field=\"max_retries\"]")).ToContainTextAsync("2");
        await PageChecks.ScreenshotAsync(page, "conflict");
        await PageChecks.AssertAccessibleAsync(page, "conflict with a merge preview");
        await page.GetByRole(AriaRole.Button, new() { Name = "Apply" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status).Filter(new() { HasText = "resolved" })).ToBeVisibleAsync();
        await Expect(page.Locator("#no-conflicts")).ToBeVisibleAsync();

        var inFile = Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "nightly-backup");
        Assert.Equal(("0 4 * * *", "/opt/backup-db.sh", 2), (inFile.Schedule, inFile.Command, inFile.MaxRetries));
        Assert.Equal("0 4 * * *", await server.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'nightly-backup'"));
        Assert.Equal("/opt/backup-db.sh", await server.ScalarAsync<string>("SELECT command FROM scheduled_tasks WHERE id = 'nightly-backup'"));
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
        Assert.Equal("merge", await server.ScalarAsync<string>("SELECT choice FROM sync_conflicts WHERE task_id = 'nightly-backup'"));
    }

    [Fact]
    public async Task Resolution_of_a_conflict_that_changed_after_it_was_shown_is_refused_and_explained()
    {
        await using var server = await ServerFixture.StartAsync("ui_conflict_stale", Yaml, o =>
        {
            o.WatchDebounce = TimeSpan.FromMinutes(10);
            o.PollInterval = TimeSpan.FromMinutes(10);
        });
        var text = File.ReadAllText(server.ConfigPath).Replace("schedule: \"0 3 * * *\"", "schedule: \"0 4 * * *\"", StringComparison.Ordinal);
        await File.WriteAllTextAsync(server.ConfigPath, text);
        Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 5 * * *' WHERE id = 'nightly-backup'"));
        using (var sync = await server.Http.PostAsync("/api/sync", null))
            Assert.Equal(HttpStatusCode.OK, sync.StatusCode);
        var id = await server.ScalarAsync<long>("SELECT id FROM sync_conflicts WHERE task_id = 'nightly-backup' AND status = 'open'");

        var page = await PageChecks.OpenAsync(browser.Browser, server.BaseAddress, $"#/conflicts/{id}");
        await Expect(page.Locator("#versions tr[data-field=\"schedule\"]")).ToContainTextAsync("0 5 * * *");
        await page.GetByRole(AriaRole.Button, new() { Name = "Keep database" }).ClickAsync();
        await Expect(page.Locator("#preview dd[data-field=\"schedule\"]")).ToHaveTextAsync("0 5 * * *");

        // While the person looks at the preview, the database side changes again.
        Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 6 * * *' WHERE id = 'nightly-backup'"));
        await page.GetByRole(AriaRole.Button, new() { Name = "Apply" }).ClickAsync();

        await Expect(page.GetByRole(AriaRole.Alert).Filter(new() { HasText = "Not applied" })).ToContainTextAsync("changed");
        await Expect(page.Locator("#versions tr[data-field=\"schedule\"]")).ToContainTextAsync("0 6 * * *"); // the newest versions, to decide again
        await PageChecks.ScreenshotAsync(page, "conflict-stale");
        Assert.Equal("open", await server.ScalarAsync<string>("SELECT status FROM sync_conflicts WHERE id = $1", id));
        Assert.Equal("0 6 * * *", await server.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'nightly-backup'"));
        Assert.Equal(text, File.ReadAllText(server.ConfigPath));
    }

    [Fact]
    public async Task Stale_edit_is_refused_with_a_message_and_changes_nothing()
    {
        await using var server = await ServerFixture.StartAsync("ui_stale", Yaml);
        var page = await PageChecks.OpenAsync(browser.Browser, server.BaseAddress, "#/tasks/nightly-backup/edit");
        await Expect(page.GetByLabel("Schedule")).ToHaveValueAsync("0 3 * * *");

        // Someone else saves first (version 1 -> 2).
        using (var other = await server.Http.PutAsync("/api/tasks/nightly-backup", ServerFixture.Json(new { schedule = "0 2 * * *", command = "/usr/local/bin/backup.sh", name = "Nightly backup", tags = new[] { "ops", "backup" } })))
            Assert.Equal(HttpStatusCode.OK, other.StatusCode);

        await page.GetByLabel("Schedule").FillAsync("0 1 * * *");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        var alert = page.GetByRole(AriaRole.Alert).Filter(new() { HasText = "Not saved" });
        await Expect(alert).ToContainTextAsync("changed elsewhere");
        await Expect(alert).ToContainTextAsync("now version 2");
        await Expect(page.GetByLabel("Schedule")).ToHaveValueAsync("0 1 * * *"); // the person's edit is kept in the form
        await PageChecks.ScreenshotAsync(page, "task-form-stale");
        await PageChecks.AssertAccessibleAsync(page, "task form refused as stale");

        Assert.Equal("0 2 * * *", await server.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'nightly-backup'"));
        Assert.Equal(2L, await server.ScalarAsync<long>("SELECT version FROM scheduled_tasks WHERE id = 'nightly-backup'"));
        Assert.Equal("0 2 * * *", Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "nightly-backup").Schedule);
    }

    [Fact]
    public async Task Sync_status_shows_an_invalid_file_with_line_and_column_and_sync_now_runs_a_sync()
    {
        await using var server = await ServerFixture.StartAsync("ui_status", Yaml);
        var page = await PageChecks.OpenAsync(browser.Browser, server.BaseAddress, "#/status");
        await Expect(page.Locator("#file-state")).ToHaveTextAsync("valid");
        await Expect(page.Locator("#runs tbody tr").First).ToContainTextAsync("startup");

        // The file breaks on disk: the page follows, naming line and column.
        var broken = File.ReadAllText(server.ConfigPath).Replace("enabled: false", "enabled: maybe", StringComparison.Ordinal);
        await File.WriteAllTextAsync(server.ConfigPath, broken);
        await Expect(page.Locator("#file-state")).ToHaveTextAsync("invalid");
        var line = broken.Split('\n').ToList().FindIndex(l => l.Contains("enabled: maybe", StringComparison.Ordinal)) + 1;
        await Expect(page.Locator("#file-problems")).ToContainTextAsync($"{line}:");
        await PageChecks.ScreenshotAsync(page, "status-invalid");
        await PageChecks.AssertAccessibleAsync(page, "sync status, file invalid");

        await File.WriteAllTextAsync(server.ConfigPath, Yaml);
        await Expect(page.Locator("#file-state")).ToHaveTextAsync("valid");
        await page.GetByRole(AriaRole.Button, new() { Name = "Sync now" }).ClickAsync();
        await Expect(page.Locator(".notice.good")).ToContainTextAsync(new Regex("Nothing changed since the last sync|Sync run [0-9]+:"));
        await PageChecks.ScreenshotAsync(page, "status");
    }

    [Fact]
    public async Task With_a_token_the_page_asks_for_it_once_and_then_lists_tasks()
    {
        await using var server = await ServerFixture.StartAsync("ui_token", Yaml, o => o.Token = "s3cret-token");
        var page = await PageChecks.OpenAsync(browser.Browser, server.BaseAddress);

        await Expect(page.Locator("h1")).ToHaveTextAsync("Sign in");
        await Expect(page.GetByLabel("API token")).ToBeFocusedAsync();
        await PageChecks.AssertAccessibleAsync(page, "sign-in form");
        await PageChecks.ScreenshotAsync(page, "sign-in");
        await page.GetByLabel("API token").FillAsync("wrong");
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("refused");
        await page.GetByLabel("API token").FillAsync("s3cret-token");
        await page.Keyboard.PressAsync("Enter");

        await Expect(page.Locator("#tasks-table tbody tr")).ToHaveCountAsync(3);
        Assert.Equal("s3cret-token", await page.EvaluateAsync<string>("sessionStorage.getItem('schedsync.token')"));
        Assert.Empty(await page.Context.CookiesAsync());
        // Asked once: another view in the same tab needs no new sign-in.
        await page.GetByRole(AriaRole.Link, new() { Name = "Sync status" }).ClickAsync();
        await Expect(page.Locator("#file-state")).ToHaveTextAsync("valid");
    }
}
