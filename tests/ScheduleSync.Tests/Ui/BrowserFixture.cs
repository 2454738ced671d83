using Deque.AxeCore.Playwright;
using Microsoft.Playwright;

namespace ScheduleSync.Tests.Ui;

/// <summary>
/// One headless Chromium for a test class: Debian's <c>/usr/bin/chromium</c> (scripts/prerequisites.sh installs it),
/// driven by Playwright's bundled driver; Playwright never downloads a browser of its own.
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(ChromiumPath), $"{ChromiumPath} is missing: run scripts/prerequisites.sh (apt-get install chromium)");
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            // Root has no user namespace sandbox here; /dev/shm is small in containers.
            Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        });
    }

    public async Task DisposeAsync()
    {
        await Browser.CloseAsync();
        _playwright?.Dispose();
    }
}

/// <summary>Screenshots (TestResults/screenshots/, and docs/screenshots/ on request) and the axe-core check.</summary>
internal static class PageChecks
{
    /// <summary>The viewer's zone in every browser test: no daylight saving, far from UTC, so the two next-run columns differ.</summary>
    public const string ViewerZone = "Asia/Tokyo";

    private static readonly string RepoRoot = FindRepoRoot();

    public static async Task<IPage> OpenAsync(IBrowser browser, Uri baseAddress, string hash = "#/tasks", int width = 1280)
    {
        var context = await browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = baseAddress.ToString(),
            TimezoneId = ViewerZone,
            Locale = "en-GB",
            ViewportSize = new ViewportSize { Width = width, Height = 900 },
        });
        context.SetDefaultTimeout(10_000);
        var page = await context.NewPageAsync();
        await page.GotoAsync("/" + hash);
        return page;
    }

    /// <summary>
    /// Saves a full-page screenshot as TestResults/screenshots/NAME.png; with SCHEDSYNC_UPDATE_SCREENSHOTS=1 also as
    /// docs/screenshots/NAME.png (the committed pictures; off by default so a test run leaves the tree clean).
    /// </summary>
    public static async Task ScreenshotAsync(IPage page, string name)
    {
        var path = Path.Combine(RepoRoot, "TestResults", "screenshots", name + ".png");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true, Animations = ScreenshotAnimations.Disabled });
        if (Environment.GetEnvironmentVariable("SCHEDSYNC_UPDATE_SCREENSHOTS") == "1")
        {
            var docs = Path.Combine(RepoRoot, "docs", "screenshots", name + ".png");
            Directory.CreateDirectory(Path.GetDirectoryName(docs)!);
            File.Copy(path, docs, overwrite: true);
        }
    }

    /// <summary>Runs axe-core in the page (WCAG 2 A/AA rules): no serious or critical violation.</summary>
    public static async Task AssertAccessibleAsync(IPage page, string view)
    {
        var result = await page.RunAxe();
        var bad = result.Violations.Where(v => v.Impact is "serious" or "critical").ToList();
        Assert.True(bad.Count == 0, $"{view}: axe found {bad.Count} serious/critical violation(s):\n" + string.Join("\n", bad.Select(v =>
            $"{v.Id} ({v.Impact}): {v.Help} at {string.Join(", ", v.Nodes.Select(n => n.Target?.ToString()))}")));
    }

    /// <summary>Nothing wider than the window: a narrow window needs no sideways scrolling.</summary>
    public static async Task AssertNoSidewaysScrollAsync(IPage page, string view)
    {
        var (scroll, client) = (await page.EvaluateAsync<int>("document.documentElement.scrollWidth"), await page.EvaluateAsync<int>("document.documentElement.clientWidth"));
        Assert.True(scroll <= client, $"{view}: the page is {scroll} px wide in a {client} px window");
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ScheduleSync.slnx"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }
}
