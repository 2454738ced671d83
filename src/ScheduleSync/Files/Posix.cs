using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace ScheduleSync.Files;

/// <summary>
/// The few libc calls the safe-write protocol needs and .NET does not expose faithfully: a raw <c>open(2)</c>
/// (FileStream takes its own <c>flock</c> on every file it opens), <c>flock(2)</c>, <c>fsync(2)</c> on a directory,
/// <c>fchown(2)</c>, and a <c>rename(2)</c> that reports EXDEV instead of silently copying (File.Move does).
/// Linux only; flag and errno values are Linux's.
/// </summary>
internal static unsafe partial class Posix
{
    private const string Libc = "libc";

    public const int ORdOnly = 0;
    public const int OWrOnly = 1;
    public const int OCreat = 0x40;
    public const int OExcl = 0x80;
    /// <summary>Opening a FIFO for reading returns at once instead of waiting for a writer (no effect on regular files).</summary>
    public const int ONonBlock = 0x800;
    public const int OCloExec = 0x80000;

    // O_DIRECTORY is one of the few open flags whose value differs between Linux architectures.
    public static readonly int ODirectory = RuntimeInformation.ProcessArchitecture
        is Architecture.Arm or Architecture.Arm64 or Architecture.Armv6 or Architecture.Ppc64le ? 0x4000 : 0x10000;

    public const int LockEx = 2;
    public const int LockNb = 4;
    public const int LockUn = 8;

    public const int EPerm = 1;
    public const int ENoEnt = 2;
    public const int EIntr = 4;
    public const int EIo = 5;
    public const int EAgain = 11;
    public const int EAcces = 13;
    public const int EBusy = 16;
    public const int EExist = 17;
    public const int EXDev = 18;
    public const int EInval = 22;
    public const int ENoSpc = 28;
    public const int ERofs = 30;
    public const int EDQuot = 122;

    public const uint SIfMt = 0xF000;
    public const uint SIfReg = 0x8000;
    public const uint SIfDir = 0x4000;
    public const uint SIfIfo = 0x1000;
    public const uint SIfChr = 0x2000;
    public const uint SIfBlk = 0x6000;
    public const uint SIfLnk = 0xA000;
    public const uint SIfSock = 0xC000;

    [LibraryImport(Libc, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenNative(string path, int flags, uint mode);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    private static partial int CloseNative(int fd);

    [LibraryImport(Libc, EntryPoint = "read", SetLastError = true)]
    private static partial nint ReadNative(int fd, byte* buffer, nuint count);

    [LibraryImport(Libc, EntryPoint = "write", SetLastError = true)]
    private static partial nint WriteNative(int fd, byte* buffer, nuint count);

    [LibraryImport(Libc, EntryPoint = "fsync", SetLastError = true)]
    private static partial int FsyncNative(int fd);

    [LibraryImport(Libc, EntryPoint = "flock", SetLastError = true)]
    private static partial int FlockNative(int fd, int operation);

    [LibraryImport(Libc, EntryPoint = "fchmod", SetLastError = true)]
    private static partial int FchmodNative(int fd, uint mode);

    [LibraryImport(Libc, EntryPoint = "fchown", SetLastError = true)]
    private static partial int FchownNative(int fd, uint uid, uint gid);

    [LibraryImport(Libc, EntryPoint = "rename", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int RenameNative(string oldPath, string newPath);

    [LibraryImport(Libc, EntryPoint = "unlink", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int UnlinkNative(string path);

    [LibraryImport(Libc, EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LinkNative(string existingPath, string newPath);

    [LibraryImport(Libc, EntryPoint = "mkdir", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MkdirNative(string path, uint mode);

    [LibraryImport(Libc, EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int StatxNative(int dirFd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport(Libc, EntryPoint = "geteuid")]
    public static partial uint GetEuid();

    /// <summary>Every call returns 0 or a positive result on success, or <c>-errno</c> on failure.</summary>
    public static int Open(string path, int flags, uint mode = 0)
    {
        while (true)
        {
            int fd = OpenNative(path, flags | OCloExec, mode);
            if (fd >= 0) return fd;
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EIntr) return -errno;
        }
    }

    public static int Close(int fd) => CloseNative(fd) == 0 ? 0 : -Marshal.GetLastPInvokeError();

    public static int Fsync(int fd) => Retry(() => FsyncNative(fd));

    public static int Flock(int fd, int operation) => Retry(() => FlockNative(fd, operation));

    public static int Fchmod(int fd, uint mode) => Retry(() => FchmodNative(fd, mode));

    public static int Fchown(int fd, uint uid, uint gid) => Retry(() => FchownNative(fd, uid, gid));

    public static int Rename(string oldPath, string newPath) => Retry(() => RenameNative(oldPath, newPath));

    public static int Unlink(string path) => Retry(() => UnlinkNative(path));

    /// <summary>A second name for a file (hard link); 0 or -errno.</summary>
    public static int Link(string existingPath, string newPath) => Retry(() => LinkNative(existingPath, newPath));

    public static int Mkdir(string path, uint mode) => Retry(() => MkdirNative(path, mode));

    /// <summary>Writes all of <paramref name="data"/>, looping over short writes; 0 or -errno.</summary>
    public static int WriteAll(int fd, ReadOnlySpan<byte> data)
    {
        fixed (byte* start = data)
        {
            int done = 0;
            while (done < data.Length)
            {
                nint n = WriteNative(fd, start + done, (nuint)(data.Length - done));
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == EIntr) continue;
                    return -errno;
                }
                done += (int)n;
            }
        }
        return 0;
    }

    /// <summary>
    /// Reads to end of file, but never more than <paramref name="maxBytes"/> + 1 bytes (the size from stat is only a
    /// hint: a file may grow, and some report 0): memory stays bounded by the limit whatever the file is. The caller
    /// tells an over-limit file by <c>data.Length &gt; maxBytes</c>. 0 or -errno.
    /// </summary>
    public static int ReadAll(int fd, long sizeHint, long maxBytes, out byte[] data)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        long cap = Math.Min(maxBytes + 1, Array.MaxLength);
        // Exactly the size stat gave (when it gave one): a file that does not change is read into its one array, never
        // copied, so reading costs its size and a constant. A 1-byte probe at the end tells whether it grew.
        var buffer = new byte[Math.Min(sizeHint > 0 ? sizeHint : 4096, cap)];
        int length = 0;
        while (length < cap)
        {
            if (length == buffer.Length)
            {
                byte probe = 0;
                nint got = ReadNative(fd, &probe, 1);
                if (got < 0)
                {
                    int error = Marshal.GetLastPInvokeError();
                    if (error == EIntr) continue;
                    data = [];
                    return -error;
                }
                if (got == 0) break;
                Array.Resize(ref buffer, (int)Math.Min(Math.Max((long)buffer.Length * 2, 4096), cap));
                buffer[length++] = probe;
                continue;
            }
            nint n;
            fixed (byte* p = buffer)
            {
                n = ReadNative(fd, p + length, (nuint)(buffer.Length - length));
            }
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == EIntr) continue;
                data = [];
                return -errno;
            }
            if (n == 0) break;
            length += (int)n;
        }
        data = length == buffer.Length ? buffer : buffer.AsSpan(0, length).ToArray();
        return 0;
    }

    /// <summary>The parts of <c>struct statx</c> the store uses; its layout is the same on every architecture.</summary>
    internal readonly record struct FileStatus(uint Mode, uint Uid, uint Gid, long Size, DateTime LastWriteUtc)
    {
        public bool IsRegularFile => (Mode & SIfMt) == SIfReg;
        public uint Permissions => Mode & 0xFFF; // includes setuid, setgid and sticky (07777)

        /// <summary>What the file is, for messages: "a directory", "a FIFO (named pipe)", …</summary>
        public string Kind => (Mode & SIfMt) switch
        {
            SIfReg => "a regular file",
            SIfDir => "a directory",
            SIfIfo => "a FIFO (named pipe)",
            SIfChr => "a character device",
            SIfBlk => "a block device",
            SIfSock => "a socket",
            SIfLnk => "a symbolic link",
            _ => $"a file of unknown type (mode {Convert.ToString(Mode & SIfMt, 8)})",
        };
    }

    private const int AtFdCwd = -100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxBasicStats = 0x7FF;

    public static int Fstat(int fd, out FileStatus status) => Statx(fd, "", AtEmptyPath, out status);

    public static int Stat(string path, out FileStatus status) => Statx(AtFdCwd, path, 0, out status);

    public static int Lstat(string path, out FileStatus status) => Statx(AtFdCwd, path, 0x100 /* AT_SYMLINK_NOFOLLOW */, out status);

    private static int Statx(int dirFd, string path, int flags, out FileStatus status)
    {
        Span<byte> buffer = stackalloc byte[256];
        while (true)
        {
            int result;
            fixed (byte* p = buffer)
            {
                result = StatxNative(dirFd, path, flags, StatxBasicStats, p);
            }
            if (result >= 0) break;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EIntr) continue;
            status = default;
            return -errno;
        }
        long mtimeSeconds = BinaryPrimitives.ReadInt64LittleEndian(buffer[112..]);
        uint mtimeNanos = BinaryPrimitives.ReadUInt32LittleEndian(buffer[120..]);
        status = new FileStatus(
            Mode: BinaryPrimitives.ReadUInt16LittleEndian(buffer[28..]),
            Uid: BinaryPrimitives.ReadUInt32LittleEndian(buffer[20..]),
            Gid: BinaryPrimitives.ReadUInt32LittleEndian(buffer[24..]),
            Size: BinaryPrimitives.ReadInt64LittleEndian(buffer[40..]),
            LastWriteUtc: DateTime.UnixEpoch.AddSeconds(mtimeSeconds).AddTicks(mtimeNanos / 100));
        return 0;
    }

    /// <summary>Wraps an fd we opened so that a forgotten Dispose still closes it (and so drops a flock).</summary>
    public static SafeFileHandle OwnHandle(int fd) => new(fd, ownsHandle: true);

    private static int Retry(Func<int> call)
    {
        while (true)
        {
            if (call() >= 0) return 0;
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EIntr) return -errno;
        }
    }

    /// <summary>"No space left on device (ENOSPC)".</summary>
    public static string Describe(int errno)
    {
        string name = errno switch
        {
            EPerm => "EPERM",
            ENoEnt => "ENOENT",
            EIo => "EIO",
            EAgain => "EAGAIN",
            EAcces => "EACCES",
            EBusy => "EBUSY",
            EExist => "EEXIST",
            EXDev => "EXDEV",
            EInval => "EINVAL",
            ENoSpc => "ENOSPC",
            ERofs => "EROFS",
            EDQuot => "EDQUOT",
            _ => $"errno {errno}",
        };
        return $"{Marshal.GetPInvokeErrorMessage(errno)} ({name})";
    }
}
