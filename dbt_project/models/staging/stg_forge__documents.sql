-- Crawled pages that answered with content (304s keep their stored text), for the corpus.
with source as (
    select * from {{ source('raw', 'documents') }}
),

final as (
    select
        'web:' || substr(sha256(uri), 1, 20) as doc_id,
        'agent' as category,
        'web_doc' as subcategory,
        uri as source_uri,
        title,
        text,
        sha256,
        length(text) as n_chars,
        depth,
        parent_uri,
        fetched_at
    from source
    where text is not null and length(text) > 0 and status in (200, 304)
)

select * from final
