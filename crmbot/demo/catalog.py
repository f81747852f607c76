"""The fixed vocabulary of the sample company: its products, the product affinities it
plants, its account managers, regions, names, and the phrases its tickets and surveys use.

The company is Brewline, a supplier of coffee and tea equipment to cafes, offices and home
baristas. Everything random about it lives in the other modules; this one only names things.
"""

from __future__ import annotations

from dataclasses import dataclass

# product_id, name, category, price, margin (share of the price kept), popularity weight
PRODUCTS: list[tuple[str, str, str, float, float, float]] = [
    ("P001", "Espresso Machine", "Machines", 649.0, 0.22, 3.0),
    ("P002", "Dual Boiler Espresso Machine", "Machines", 1490.0, 0.20, 0.8),
    ("P003", "Drip Coffee Maker", "Machines", 129.0, 0.30, 3.0),
    ("P004", "Capsule Machine", "Machines", 179.0, 0.25, 2.0),
    ("P005", "Cold Brew Maker", "Machines", 49.0, 0.40, 2.5),
    ("P006", "Burr Grinder", "Grinders", 249.0, 0.28, 3.0),
    ("P007", "Hand Grinder", "Grinders", 89.0, 0.35, 2.0),
    ("P008", "Commercial Grinder", "Grinders", 890.0, 0.22, 0.8),
    ("P009", "Pour-Over Dripper", "Brewing", 29.0, 0.50, 3.5),
    ("P010", "French Press", "Brewing", 39.0, 0.45, 4.0),
    ("P011", "AeroPress", "Brewing", 45.0, 0.40, 3.0),
    ("P012", "Gooseneck Kettle", "Brewing", 69.0, 0.40, 3.0),
    ("P013", "Coffee Scale", "Brewing", 49.0, 0.45, 3.0),
    ("P014", "Moka Pot", "Brewing", 35.0, 0.45, 2.0),
    ("P015", "House Blend Beans 1kg", "Coffee", 24.0, 0.55, 10.0),
    ("P016", "Ethiopia Single Origin 250g", "Coffee", 16.0, 0.55, 6.0),
    ("P017", "Colombia Single Origin 250g", "Coffee", 15.0, 0.55, 6.0),
    ("P018", "Decaf Blend 1kg", "Coffee", 26.0, 0.50, 3.0),
    ("P019", "Espresso Roast 1kg", "Coffee", 27.0, 0.55, 8.0),
    ("P020", "Cold Brew Coarse Blend 1kg", "Coffee", 22.0, 0.55, 0.6),
    ("P021", "Coffee Capsules (50)", "Coffee", 19.0, 0.60, 5.0),
    ("P022", "Loose Leaf Tea Sampler", "Tea", 32.0, 0.60, 2.5),
    ("P023", "Glass Teapot", "Tea", 45.0, 0.45, 2.0),
    ("P024", "Tea Infuser", "Tea", 12.0, 0.65, 0.6),
    ("P025", "Matcha Kit", "Tea", 39.0, 0.50, 2.0),
    ("P026", "Earl Grey 250g", "Tea", 14.0, 0.60, 4.0),
    ("P027", "Milk Frother", "Accessories", 59.0, 0.40, 4.0),
    ("P028", "Milk Pitcher", "Accessories", 19.0, 0.55, 3.0),
    ("P029", "Tamper", "Accessories", 29.0, 0.50, 3.0),
    ("P030", "Knock Box", "Accessories", 25.0, 0.50, 2.0),
    ("P031", "Travel Mug", "Accessories", 22.0, 0.55, 4.0),
    ("P032", "Ceramic Cup Set", "Accessories", 36.0, 0.50, 3.0),
    ("P033", "Barista Apron", "Accessories", 28.0, 0.55, 1.0),
    ("P034", "Descaler", "Maintenance", 14.0, 0.65, 0.6),
    ("P035", "Paper Filters (100)", "Maintenance", 6.0, 0.70, 0.6),
    ("P036", "Cleaning Tablets", "Maintenance", 12.0, 0.65, 3.0),
    ("P037", "Water Filter Cartridge", "Maintenance", 18.0, 0.60, 3.0),
    ("P038", "Grinder Cleaner", "Maintenance", 11.0, 0.65, 2.0),
    ("P039", "Beans Subscription (1 month)", "Subscriptions", 45.0, 0.50, 4.0),
    ("P040", "Barista Training Session", "Services", 120.0, 0.70, 1.0),
    ("P041", "Extended Warranty", "Services", 79.0, 0.80, 1.0),
]


@dataclass(frozen=True)
class AffinityRule:
    """Orders holding every antecedent also hold the consequent with this probability."""

    antecedents: tuple[str, ...]
    consequent: str
    confidence: float
    # Relative weight among "starter kit" orders seeded with this rule's antecedents.
    kit_weight: float


AFFINITY_RULES: list[AffinityRule] = [
    AffinityRule(("P001", "P006"), "P034", 0.85, 0.30),  # espresso machine + grinder -> descaler
    AffinityRule(("P009",), "P035", 0.80, 0.30),  # pour-over dripper -> paper filters
    AffinityRule(("P022", "P023"), "P024", 0.85, 0.20),  # tea sampler + teapot -> infuser
    AffinityRule(("P005",), "P020", 0.80, 0.20),  # cold brew maker -> coarse blend
]

# Region weights and the account managers (Slack handles) who look after each region.
REGIONS: list[tuple[str, float]] = [("EMEA", 0.38), ("NA", 0.34), ("APAC", 0.18), ("LATAM", 0.10)]
OWNERS_BY_REGION: dict[str, list[str]] = {
    "EMEA": ["maria", "omar", "sofia"],
    "NA": ["james", "liam", "olivia"],
    "APAC": ["aiko", "chen"],
    "LATAM": ["diego", "sofia"],
}
PHONE_PREFIXES: dict[str, list[str]] = {
    "EMEA": ["+44 20", "+49 30", "+33 1", "+34 91", "+31 20"],
    "NA": ["+1 415", "+1 212", "+1 312", "+1 416", "+1 206"],
    "APAC": ["+81 3", "+61 2", "+65 6", "+91 22"],
    "LATAM": ["+55 11", "+52 55", "+54 11", "+57 1"],
}

# fmt: off
FIRST_NAMES: list[str] = [
    "Ada", "Alan", "Amara", "Ana", "Andre", "Anika", "Arjun", "Ben", "Bianca", "Carlos",
    "Chloe", "Daniel", "Dara", "David", "Elena", "Elif", "Emma", "Ethan", "Fatima", "Felix",
    "Grace", "Hana", "Hugo", "Ines", "Isaac", "Jana", "Javier", "Jin", "Julia", "Kai",
    "Kenji", "Lara", "Leo", "Lina", "Lucas", "Mai", "Marco", "Maya", "Mei", "Mila",
    "Nadia", "Noah", "Nora", "Olga", "Omar", "Pablo", "Paula", "Priya", "Rafael", "Rhea",
    "Rosa", "Ryo", "Sam", "Sara", "Sven", "Tariq", "Thea", "Tom", "Valentina", "Wei",
    "Yara", "Yusuf", "Zara", "Zoe",
]
LAST_NAMES: list[str] = [
    "Almeida", "Andersen", "Baker", "Banerjee", "Becker", "Bianchi", "Brown", "Castro",
    "Chen", "Clarke", "Costa", "Dubois", "Eriksson", "Fernandez", "Fischer", "Garcia",
    "Gonzalez", "Haddad", "Hansen", "Hoffmann", "Ito", "Jansen", "Kato", "Khan", "Kim",
    "Kowalski", "Lambert", "Lee", "Lopez", "Martin", "Meyer", "Moreau", "Murphy", "Nakamura",
    "Nguyen", "Novak", "Okafor", "Olsen", "Patel", "Perez", "Petrov", "Rossi", "Santos",
    "Schmidt", "Silva", "Singh", "Suzuki", "Tanaka", "Taylor", "Torres", "Van Dijk", "Wagner",
    "Walsh", "Wang", "Weber", "Williams", "Wong", "Yamamoto", "Yilmaz", "Zhang",
]

# Company names are "<word> <word> <kind>", e.g. "Blue Harbor Cafe".
COMPANY_WORDS_A: list[str] = [
    "Blue", "Golden", "Little", "North", "Old", "Red", "Silver", "South", "Urban", "Wild",
    "Green", "Copper", "Bright", "Quiet", "Morning", "Corner", "Harbor", "River", "Stone",
    "Maple",
]
COMPANY_WORDS_B: list[str] = [
    "Bean", "Harbor", "Oak", "Lantern", "Fox", "Sparrow", "Mill", "Bridge", "Garden",
    "Anchor", "Cedar", "Owl", "Kettle", "Compass", "Meadow", "Pine", "Crown", "Bear",
]
COMPANY_KINDS: list[str] = [
    "Cafe", "Coffee House", "Roasters", "Bistro", "Bakery", "Hotel", "Offices", "Co-working",
    "Deli", "Tea Room", "Diner", "Studios", "Books", "Catering",
]
# fmt: on

# Ticket and survey text. Each mood has its own words so a text model can learn sentiment,
# while topic words (delivery, grinder, beans...) appear in every mood.
# (subject, what happened) per mood; the body wraps "what happened" in a mood's template.
TICKET_ISSUES: dict[str, list[tuple[str, str]]] = {
    "negative": [
        ("Machine stopped working", "the espresso machine stopped working and leaks water"),
        ("Order arrived damaged", "half of the cups were broken in the box"),
        ("Still waiting for my delivery", "the delivery is two weeks late"),
        ("Refund not received", "the refund still has not arrived"),
        ("Wrong item shipped", "we received a hand grinder instead of a burr grinder"),
        ("Grinder making a loud noise", "the grinder broke after a month"),
        ("Charged twice for one order", "we were billed twice for the same order"),
        ("Beans arrived stale", "the beans tasted stale"),
    ],
    "neutral": [
        ("Question about my invoice", "our invoice needs a VAT number"),
        ("How do I descale my machine?", "how often should we descale the machine"),
        ("Change of delivery address", "we are moving and need a new delivery address"),
        ("Update billing details", "we have a new card for billing"),
        ("Bulk pricing for our cafe", "do you offer volume pricing"),
        ("Grind size for cold brew", "which grind size works for cold brew"),
        ("Subscription delivery day", "can we move our subscription delivery to Thursdays"),
    ],
    "positive": [
        ("Thanks for the quick help", "the replacement part arrived the next day"),
        ("Reorder of our favourite beans", "the new blend is a hit with our customers"),
        ("Compliments to the support team", "your team sorted out the delivery quickly"),
        ("Training session was great", "the barista training was excellent"),
    ],
}
TICKET_BODIES: dict[str, list[str]] = {
    "negative": [
        "This is really disappointing. {topic} and nobody has answered my last email.",
        "Very frustrated: {topic}. Please fix this or we will cancel our account.",
        "Third time I am writing about this. {topic}. Terrible service so far.",
        "{topic}. We are considering switching to another supplier.",
        "Unacceptable. {topic} and nobody seems to care.",
    ],
    "neutral": [
        "Hi, quick question: {topic}. Could you let me know? Thanks.",
        "Hello team, {topic}. Please advise when you can.",
        "Could you help with this: {topic}?",
    ],
    "positive": [
        "Thanks a lot, {topic}. Great service as always!",
        "Just wanted to say {topic}. Really happy with Brewline.",
        "Excellent support: {topic}. Much appreciated.",
    ],
}
COMMENT_PHRASES: dict[str, list[str]] = {
    "negative": [
        "Disappointed with the service.",
        "Delivery was late again.",
        "The machine broke and support was slow.",
        "Too expensive for the quality.",
        "Nobody answers our emails.",
        "Beans arrived stale, very poor.",
        "Would not recommend.",
        "Frustrating ordering experience.",
        "Thinking about switching supplier.",
        "Awful customer support.",
        "Damaged items and a slow refund.",
        "Quality has gone downhill.",
    ],
    "neutral": [
        "Delivery was fine.",
        "Okay overall.",
        "The beans are decent.",
        "Average experience, nothing special.",
        "Prices are about what we expected.",
        "Ordering works.",
        "Some items were out of stock.",
        "Support answered eventually.",
    ],
    "positive": [
        "Love the beans!",
        "Fast delivery and great quality.",
        "Excellent support team, very helpful.",
        "Our customers love the new blend.",
        "Great machines, reliable and easy to use.",
        "Always on time, thank you.",
        "Highly recommend Brewline.",
        "Fantastic service.",
        "Friendly and quick answers.",
        "Best coffee supplier we have used.",
    ],
}

TICKET_CHANNELS: list[tuple[str, float]] = [("email", 0.5), ("chat", 0.3), ("phone", 0.2)]
