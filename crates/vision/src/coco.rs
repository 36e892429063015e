//! COCO-80 class names in the order detectors trained on COCO emit them.

/// The 80 COCO class names, index = class id.
pub const COCO_CLASSES: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// Name of COCO class `id`, or `"unknown"` outside 0..80.
#[must_use]
pub fn class_name(id: u32) -> &'static str {
    usize::try_from(id)
        .ok()
        .and_then(|i| COCO_CLASSES.get(i))
        .copied()
        .unwrap_or("unknown")
}

/// Class id of a COCO name (exact match).
#[must_use]
pub fn class_id(name: &str) -> Option<u32> {
    COCO_CLASSES
        .iter()
        .position(|&n| n == name)
        .and_then(|i| u32::try_from(i).ok())
}
