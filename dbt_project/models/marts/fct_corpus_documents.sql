-- One row per pre-training document after exact dedup and decontamination, with its category,
-- a token estimate, lineage back to the raw row, and its split.
with documents as (
    select * from {{ ref('int_deduplicated_corpus_documents') }}
),

contaminated as (
    select distinct doc_id from {{ ref('fct_contamination') }}
),

clean as (
    select documents.*
    from documents
    anti join contaminated using (doc_id)
),

keyed as (
    select
        clean.*,
        {{ document_split_key('doc_id', 'source_table', 'source_row_id') }} as split_key
    from clean
),

final as (
    select
        doc_id,
        category,
        subcategory,
        text,
        n_chars,
        -- ~4 characters per token for English and code with a BPE tokenizer; the exact count is
        -- known after packing (the shard manifest).
        cast(ceil(n_chars / 4.0) as bigint) as n_tokens_est,
        is_seed,
        license,
        source_table,
        source_row_id,
        source_uri,
        api_ids,
        split_key,
        {{ split_of('split_key') }} as split
    from keyed
)

select * from final
