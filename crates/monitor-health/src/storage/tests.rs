//! Storage reads over the files of a Raspberry Pi Compute Module 4 with eMMC (Raspberry Pi
//! OS, kernel 6.1), written under a temporary `Roots`: mountinfo names the root `/dev/root`,
//! `/sys/dev/block/179:2` leads to `mmcblk0p2`, and the eMMC reports its wear.

use std::os::unix::fs::symlink;

use super::*;

/// `/proc/self/mountinfo` of a CM4 (abridged; the format of proc(5)).
const CM4_MOUNTINFO: &str = "\
22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/root rw
24 22 0:5 / /dev rw,relatime shared:2 - devtmpfs devtmpfs rw,size=1867796k,nr_inodes=466949,mode=755
31 22 179:1 / /boot rw,relatime shared:14 - vfat /dev/mmcblk0p1 rw,fmask=0022,dmask=0022,codepage=437,iocharset=ascii,shortname=mixed,errors=remount-ro
40 22 0:36 / /mnt/my\\040data rw,relatime shared:20 - tmpfs tmpfs rw,size=1024k
";

struct Pi {
    _folder: tempfile::TempDir,
    roots: Roots,
}

fn cm4(mountinfo: &str, life_time: Option<&str>) -> Pi {
    let folder = tempfile::tempdir().unwrap();
    let roots = Roots {
        sys: folder.path().join("sys"),
        proc: folder.path().join("proc"),
    };
    fs::create_dir_all(roots.proc("self")).unwrap();
    fs::write(roots.proc("self/mountinfo"), mountinfo).unwrap();
    let devices = "devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:0001";
    let partition = roots.sys(format!("{devices}/block/mmcblk0/mmcblk0p2"));
    fs::create_dir_all(&partition).unwrap();
    fs::create_dir_all(roots.sys("dev/block")).unwrap();
    symlink(
        format!("../../{devices}/block/mmcblk0/mmcblk0p2"),
        roots.sys("dev/block/179:2"),
    )
    .unwrap();
    fs::create_dir_all(roots.sys("block")).unwrap();
    symlink(
        format!("../{devices}/block/mmcblk0"),
        roots.sys("block/mmcblk0"),
    )
    .unwrap();
    let device = roots.sys(format!("{devices}/block/mmcblk0/device"));
    fs::create_dir_all(&device).unwrap();
    if let Some(life_time) = life_time {
        // drivers/mmc/core/mmc.c: "0x%02x 0x%02x\n" and "0x%02x\n".
        fs::write(device.join("life_time"), format!("{life_time}\n")).unwrap();
        fs::write(device.join("pre_eol_info"), "0x01\n").unwrap();
    }
    fs::create_dir_all(roots.sys("fs/ext4/mmcblk0p2")).unwrap();
    fs::write(roots.sys("fs/ext4/mmcblk0p2/errors_count"), "2\n").unwrap();
    Pi {
        _folder: folder,
        roots,
    }
}

#[test]
fn mountinfo_lines_read_with_their_escapes_and_the_last_mount_wins() {
    let root = find_mount(CM4_MOUNTINFO, Path::new("/")).unwrap();
    assert_eq!(root.device_number, "179:2");
    assert_eq!(root.source, "/dev/root");
    assert_eq!(root.fs_type, "ext4");
    assert!(!root.read_only());
    let spaced = find_mount(CM4_MOUNTINFO, Path::new("/mnt/my data")).unwrap();
    assert_eq!(spaced.fs_type, "tmpfs");
    assert!(find_mount(CM4_MOUNTINFO, Path::new("/home")).is_none());

    // ext4 after an error on kernels 6.x: the mount says rw, the super block emergency_ro.
    let hidden = format!(
        "{CM4_MOUNTINFO}66 22 7:0 / /boot rw,relatime - ext4 /dev/loop0 rw,errors=remount-ro,emergency_ro\n"
    );
    let boot = find_mount(&hidden, Path::new("/boot")).unwrap();
    assert_eq!(boot.source, "/dev/loop0");
    assert!(boot.read_only());
    let remounted = "66 22 7:0 / /data ro,relatime - ext4 /dev/loop0 ro\n";
    assert!(find_mount(remounted, Path::new("/data"))
        .unwrap()
        .read_only());
}

#[test]
fn a_pi_root_named_dev_root_is_found_through_its_device_number() {
    let pi = cm4(CM4_MOUNTINFO, Some("0x02 0x01"));
    let root = find_mount(CM4_MOUNTINFO, Path::new("/")).unwrap();
    assert_eq!(
        block_device(&pi.roots, &root),
        Some(BlockDevice {
            partition: "mmcblk0p2".into(),
            disk: "mmcblk0".into()
        })
    );
    assert_eq!(
        read(&pi.roots, Path::new("/"), StorageWatch::Ext4Errors),
        Reading::Value {
            value: 2.0,
            unit: Unit::Number,
            what: "ext4 errors on / (mmcblk0p2)".into()
        }
    );
    assert_eq!(
        read(&pi.roots, Path::new("/"), StorageWatch::Wear),
        Reading::Value {
            value: 20.0,
            unit: Unit::Percent,
            what: "eMMC mmcblk0 under / {value} worn, life_time 0x02 0x01, pre_eol_info 0x01"
                .into()
        }
    );
}

#[test]
fn wear_is_the_worst_estimate() {
    assert_eq!(wear_percent("0x01 0x01\n", "0x01\n"), Some(10.0));
    assert_eq!(wear_percent("0x0a 0x03", "0x01"), Some(100.0));
    assert_eq!(wear_percent("0x0b 0x01", "0x01"), Some(110.0));
    assert_eq!(wear_percent("0x01 0x02", "0x03"), Some(90.0));
    assert_eq!(wear_percent("0x00 0x00", "0x00"), Some(0.0));
    assert_eq!(wear_percent("", "0x01"), None);
    assert_eq!(wear_percent("worn", "0x01"), None);
}

#[test]
fn what_the_device_lacks_is_unavailable_with_the_fix() {
    // An SD card: no life_time.
    let pi = cm4(CM4_MOUNTINFO, None);
    let Reading::Unavailable(message) = read(&pi.roots, Path::new("/"), StorageWatch::Wear) else {
        panic!("an SD card reports no wear");
    };
    assert!(
        message.contains("does not report its wear") && message.contains("SD cards"),
        "{message}"
    );
    let Reading::Unavailable(message) =
        read(&pi.roots, Path::new("/boot"), StorageWatch::Ext4Errors)
    else {
        panic!("vfat counts no errors");
    };
    assert_eq!(
        message,
        "/boot is vfat, not ext4: only ext4 counts its errors; remove the check"
    );
    let Reading::Unavailable(message) = read(&pi.roots, Path::new("/home"), StorageWatch::ReadOnly)
    else {
        panic!("not a mount point");
    };
    assert!(
        message.starts_with("/home is not a mount point"),
        "{message}"
    );
}
