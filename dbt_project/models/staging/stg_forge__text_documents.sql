with source as (
    select * from {{ source('raw', 'text_documents') }}
),

final as (
    select
        doc_id,
        'text' as category,
        source as subcategory,
        uri as source_uri,
        title,
        language,
        text,
        coalesce(license, 'unknown') as license,
        n_chars,
        sha256,
        fetched_at
    from source
)

select * from final
